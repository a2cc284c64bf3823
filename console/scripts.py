"""The journey's call script for a task (``templates/<script>/task.<locale>.j2``), with masked PII.

Rendered by ``engine.language.rendering`` (the same sandbox, variables and filters as the
customer messages). The script's spoken lines are addressed to the customer, so it is rendered in the
customer's locale. The customer's name and any event text are masked first: an
agent sees no more on the script than on the rest of the page.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlmodel import Session

from engine.language import rendering
from store.clock import utcnow
from store.masking import mask_name, mask_text
from store.models import AgentTask, Customer

log = logging.getLogger(__name__)


def _mask_values(data: dict[str, Any]) -> dict[str, Any]:
    return {k: mask_text(v) if isinstance(v, str) else v for k, v in data.items()}


def render_script(session: Session, task: AgentTask, customer: Customer, agent_name: str) -> str | None:
    if not task.script:
        return None
    try:
        ctx = rendering.build_context(session, customer, now=utcnow())
        event = ctx.event
        if event is not None:
            event = dataclasses.replace(event, data=_mask_values(dict(event.data)))
        ctx = dataclasses.replace(
            ctx,
            customer=dataclasses.replace(ctx.customer, name=mask_name(customer.name)),
            event=event,
            advisor_name=ctx.advisor_name or agent_name,
            journey=rendering.JourneyView(task.journey_id, task.step_id, "service", task.occurrence),
        )
        return rendering.render_task_script(task.script, ctx, locale=customer.locale)
    except Exception as exc:  # a broken script must not take the task page down
        log.warning("call script %r could not be rendered: %s", task.script, exc)
        return None
