"""The journey's call script for a task (``templates/<script>/task.<locale>.j2``), with masked PII.

Rendered by ``engine.language.rendering`` (the same sandbox, variables and filters as the
customer messages) with the rows that started the task's journey (``console.reasons``): the
triggering event of an event-entry journey (a complaint's text, a survey's score), the policy
or claim of a date-entry one. Without them a complaint script had no ``event`` and the agent
got no script at all. The script's spoken lines are addressed to the customer, so it is
rendered in the customer's locale. The customer's name and any event text are masked first: an
agent sees no more on the script than on the rest of the page.

A script that cannot be rendered is an error, not a quiet gap: it is logged at ERROR and the
task page says so (``ScriptResult.error``); ``journeys validate`` checks every journey's
scripts with the parts its tasks will have (``engine.language.task_script_check``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from console.reasons import Trigger
from engine.language import rendering
from engine.language.template_review import recent_in_force_root
from store.clock import utcnow
from store.masking import mask_name, mask_text
from store.models import AgentTask, Customer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptResult:
    text: str | None = None
    error: str | None = None  # why the script could not be rendered (masked)


def _mask_values(data: dict[str, Any], customer_name: str) -> dict[str, Any]:
    def shown(value: str) -> str:
        if customer_name:
            value = value.replace(customer_name, mask_name(customer_name))
        return mask_text(value)

    return {k: shown(v) if isinstance(v, str) else v for k, v in data.items()}


def with_claim_of_event(ctx: rendering.TemplateContext) -> rendering.TemplateContext:
    """The claim a ``claim.*`` event describes, when the store has no claim row for the customer yet.

    The claims system's event can arrive before its claim row is imported; the event carries
    the amount, which is what a claim script is about. (``journeys preview`` uses this too.)
    """
    event = ctx.event
    if ctx.claim is not None or event is None or not event.type.startswith("claim."):
        return ctx
    amount = event.data.get("amount")
    if not isinstance(amount, int | float) or isinstance(amount, bool):
        return ctx
    settled = event.type == "claim.settled"
    return dataclasses.replace(ctx, claim=rendering.ClaimView(
        float(amount), "settled" if settled else "filed", event.occurred_at, event.occurred_at if settled else None))


def render_script(session: Session, task: AgentTask, customer: Customer, agent_name: str,
                  trigger: Trigger | None = None) -> ScriptResult:
    if not task.script:
        return ScriptResult()
    trigger = trigger or Trigger()
    try:
        ctx = rendering.build_context(session, customer, event=trigger.event, policy=trigger.policy,
                                      claim=trigger.claim, now=utcnow())
        ctx = with_claim_of_event(ctx)
        event = ctx.event
        if event is not None:
            event = dataclasses.replace(event, data=_mask_values(dict(event.data), customer.name))
        ctx = dataclasses.replace(
            ctx,
            customer=dataclasses.replace(ctx.customer, name=mask_name(customer.name)),
            event=event,
            advisor_name=ctx.advisor_name or agent_name,
            journey=rendering.JourneyView(task.journey_id, task.step_id, "service", task.occurrence),
        )
        bind = session.get_bind()  # the call script in force (a changed one waits for review)
        root = recent_in_force_root(bind) if isinstance(bind, Engine) else None
        return ScriptResult(rendering.render_task_script(task.script, ctx, locale=customer.locale, root=root))
    except Exception as exc:  # a broken script must not take the task page down; it is reported, not hidden
        reason = mask_text(str(exc))
        if customer.name:
            reason = reason.replace(customer.name, mask_name(customer.name))
        log.error("call script %r of task %s could not be rendered: %s", task.script, task.id, reason)
        return ScriptResult(error=reason)
