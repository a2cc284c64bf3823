"""``journeys explain``: why a customer does or does not get each journey's touches.

For every journey in force: whether it runs, whether the customer is in its audience (tier
and each condition leaf with the customer's actual value and pass/fail; a journey anchored on
a policy or a claim is judged for each of the customer's policies or claims, with each one's
verdict), when it would next fire for them, the next agent task of a journey that creates
tasks, and what the delivery rules did to the touches around the moment asked about: a dry run
for this one customer over (at - 1 day, at + 7 days], plus the touches already in the store in
that span (held/moved by quiet hours, dropped for consent or the cap, pre-empted by a journey
of higher priority, and why). Customers are named by their external id, as ``plan --json``
names them. Nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import Session, col

from engine.language import conditions
from engine.language.journey_model import Condition, Journey
from engine.language.sla_clock import current_clocks
from engine.planning import rules
from engine.planning.facts import POLICY_FACT_COLUMNS, claim_fact, load_customers, policy_fact
from engine.planning.occurrences import anchor_fire, birthday_fires, holiday_fires, next_cron_fire
from engine.planning.planner import ChunkOutput, Planner, active_journeys, conditions_of, local_iso, switched_on
from engine.planning.step_machine import duration
from store.clock import as_utc
from store.db import get_engine
from store.masking import mask_name
from store.models import AgentTask, Claim, Customer, Enrollment, Policy, TaskStatus, Touch, claim_product_line
from store.touch_reasons import rule_reason

SPAN_BEFORE = timedelta(days=1)
SPAN_AFTER = timedelta(days=7)


class UnknownCustomer(LookupError):
    pass


def reason_code(rule: str | None, reason: str) -> tuple[str | None, dict[str, Any]]:
    """The stable code of a delivery rule's reason and its parameters (channels, times, counts,
    windows, journey ids), or (None, {}) when the text is not one of the rules' shapes: a page
    words it in its own language from these, never from the English (store.touch_reasons)."""
    return rule_reason(rule, reason)


def _next_fire(session: Session, journey: Journey, customer_id: int, fact: dict[str, Any], tz: str,
               at: datetime, policies: set[str] | None = None) -> tuple[str | None, datetime | None]:
    """When the journey next takes this customer in: as shown, and as a moment when there is one.
    ``policies``: the policies its audience takes (all when None), for a journey on policy expiry."""
    entry = journey.entry
    if entry.schedule is not None:
        due = next_cron_fire(entry.schedule.cron, tz, at)[1]
        return local_iso(due, tz), due
    if entry.event is not None:
        return f"on event {entry.event.type}", None
    assert entry.date is not None
    horizon = at + timedelta(days=400)
    if entry.date.anchor == "customer.birthday":
        birthday = fact.get("customer.birthday")
        if birthday is None:
            return None, None
        fires = birthday_fires(birthday, entry.date.at, entry.date.offset, tz, at, horizon,
                               entry.date.on_non_working_day)
        return (local_iso(fires[0][1], tz), fires[0][1]) if fires else (None, None)
    if entry.date.anchor == "holiday":
        fires = holiday_fires(list(entry.date.holidays or []), entry.date.at, entry.date.offset, tz, at, horizon,
                              entry.date.on_non_working_day)
        return (f"{fires[0][0]} {local_iso(fires[0][1], tz)}", fires[0][1]) if fires else (None, None)
    if entry.date.anchor == "policy.expiry_date" and entry.date.every is None:
        expiries = [e for ext, e in session.execute(select(col(Policy.external_id), col(Policy.expiry_date)).where(
            col(Policy.customer_id) == customer_id, col(Policy.status) == "active")).all()
            if policies is None or ext in policies]
        shift = entry.date.on_non_working_day
        dues = sorted(d for d in (anchor_fire(e, entry.date.at, entry.date.offset, tz, shift) for e in expiries)
                      if d > at)
        return (local_iso(dues[0], tz), dues[0]) if dues else (None, None)
    if entry.date.anchor != "claim.settled_at" or entry.date.every is not None:
        # Any other date field (engine.planning.anchored_entrants): named as the file names it.
        every = " every year" if entry.date.every else ""
        return f"{entry.date.anchor}{every} {entry.date.offset} at {entry.date.at}", None
    label = "30 days after a claim settles" if entry.date.offset == "30d" else f"claim settled {entry.date.offset}"
    return label, None


def _reentry_from(session: Session, journey: Journey, customer_id: int, at: datetime) -> datetime | None:
    """The moment after which the journey's re-entry rule lets the customer enter again (``at`` at the
    earliest), as the planner's ``EntryHistory.admits`` judges it; None when it never will (once ever)."""
    reentry = journey.reentry
    if reentry.allowed and not reentry.after:
        return at
    last = session.execute(select(func.max(col(Enrollment.entered_at))).where(
        col(Enrollment.customer_id) == customer_id, col(Enrollment.journey_id) == journey.id)).scalar_one()
    if last is None:
        return at
    if not reentry.allowed or reentry.after is None:
        return None
    # Fires are taken strictly after the moment given; one exactly ``after`` past the last entry is admitted.
    return max(at, as_utc(last) + duration(reentry.after) - timedelta(microseconds=1))


def _scoped_verdicts(session: Session, journey: Journey, cid: int, fact: dict[str, Any],
                     now: float) -> tuple[str, list[dict[str, Any]]] | None:
    """A journey whose audience reads ``policy.*`` or ``claim.*`` is judged per policy or claim
    (the entry takes each on its own): each one's verdict and leaves. None for other journeys."""
    cond = journey.audience.when
    fields = cond.fields() if cond is not None else set()
    if cond is None or not any(f.startswith(("policy.", "claim.")) for f in fields):
        return None
    out: list[dict[str, Any]] = []
    if any(f.startswith("policy.") for f in fields):
        for row in session.execute(select(*POLICY_FACT_COLUMNS)
                .where(col(Policy.customer_id) == cid).order_by(col(Policy.expiry_date))).all():
            out.append(_verdict(cond, {**fact, **policy_fact(row)}, now, {
                "policy": row.external_id, "expiry_date": row.expiry_date.isoformat(), "status": row.status}))
        return "policies", out
    for row in session.execute(select(
            col(Claim.external_id), col(Claim.amount), col(Claim.status), col(Claim.filed_at), col(Claim.settled_at),
            claim_product_line()).outerjoin(Policy, col(Policy.id) == col(Claim.policy_id))
            .where(col(Claim.customer_id) == cid).order_by(col(Claim.filed_at))).all():
        out.append(_verdict(cond, {**fact, **claim_fact(row.amount, row.status, row.filed_at, row.settled_at,
                                                          row.product_line)}, now,
                            {"claim": row.external_id, "status": row.status}))
    return "claims", out


def _verdict(cond: Condition, fact: dict[str, Any], now: float, item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "holds": rules.holds(cond, fact, now),
            "conditions": [vars(leaf) | {"text": leaf.describe()} for leaf in conditions.explain(cond, fact, now)]}


def _due(queue: str, start: datetime, due_within: str) -> datetime:
    """A task's due time on its queue's clock, as the planner will write it."""
    return current_clocks().times(queue, start, duration(due_within))[0]


def _next_task(journey: Journey, tz: str, at: datetime, planned: list[dict[str, Any]], stored: list[dict[str, Any]],
               held: list[dict[str, Any]], fire: datetime | None) -> dict[str, Any] | None:
    """The next agent task a journey that creates tasks has for the customer: one open in the
    store, one waiting for its moment, one the dry run plans, or else the one its next entry
    creates at once (a callback journey's first step)."""
    tasks = [s for s in journey.steps if s.task is not None]
    if not tasks:
        return None
    upcoming = sorted((t for t in [*stored, *held, *planned] if t["journey"] == journey.id),
                      key=lambda t: (t["at"] or "", t["due_at"]))
    if upcoming:
        return upcoming[0]
    first = journey.steps[0] if journey.steps else None
    if fire is None or first is None or first.task is None:
        return None
    return {"journey": journey.id, "step": first.id, "queue": first.task.queue, "at": local_iso(fire, tz),
            "due_at": local_iso(_due(first.task.queue, fire, first.task.due_within), tz), "source": "next entry"}


def explain(customer_external_id: str, at: datetime, url: str | None = None) -> dict[str, Any]:
    from engine.language.journey_registry import load_in_force
    from engine.language.settings_review import delivery_settings

    at = as_utc(at)
    config = delivery_settings(get_engine(url), write=False)  # what is approved, not what is on disk
    with Session(get_engine(url)) as session:
        cid = session.execute(select(col(Customer.id)).where(
            col(Customer.external_id) == customer_external_id)).scalar_one_or_none()
        if cid is None:
            raise UnknownCustomer(f"no customer with external id {customer_external_id!r}")
        in_force = load_in_force(session)
        session.rollback()  # explain writes nothing, not even a newly published version
        switches = switched_on(session)
        journeys = list(in_force.journeys.values())
        needed = {f for lj in journeys for c in conditions_of(lj.journey) for f in c.fields()}
        # A birthday entry's next fire reads the birthday even where no condition does (the planner's
        # entry reads it from the row); without it such a journey was shown as never firing.
        needed |= {j.entry.date.anchor for j in (lj.journey for lj in journeys)
                   if j.entry.date is not None and j.entry.date.anchor == "customer.birthday"}
        facts = load_customers(session, cid, cid, [cid], needed, at)[cid]
        name = session.execute(select(col(Customer.name)).where(col(Customer.id) == cid)).scalar_one()
        now = conditions.epoch_seconds(at)
        tz = facts.timezone

        chunks: list[ChunkOutput] = []
        running = active_journeys(session, journeys)
        Planner(session, running, config, at - SPAN_BEFORE, at + SPAN_AFTER, dry_run=True,
                customer_ids=[cid], sink=chunks.append).run()
        session.rollback()
        planned = [d for c in chunks for d in c.decisions]
        audience_seen = {k: v for c in chunks for k, v in c.audience.items()}

        planned_tasks = [{"journey": t.journey_id, "step": t.step_id, "queue": t.queue,
                          "at": local_iso(t.planned_for, tz), "due_at": local_iso(t.due_at, tz), "source": "dry run"}
                         for c in chunks for t in c.tasks]
        stored_tasks = [{"journey": t.journey_id, "step": t.step_id, "queue": t.queue, "at": None,
                         "due_at": local_iso(t.due_at, tz), "source": f"store ({t.status})"}
                        for t in session.execute(select(AgentTask).where(
                            col(AgentTask.customer_id) == cid,
                            col(AgentTask.status).in_([TaskStatus.OPEN, TaskStatus.CLAIMED]))).scalars()]
        by_id = {lj.id: lj.journey for lj in journeys}
        held_tasks = []
        for e in session.execute(select(Enrollment).where(
                col(Enrollment.customer_id) == cid, col(Enrollment.state) == "waiting")).scalars():
            step = next((s for s in by_id[e.journey_id].steps if s.id == e.step_id), None) \
                if e.journey_id in by_id else None
            if step is not None and step.task is not None and e.next_at is not None:
                held_tasks.append({"journey": e.journey_id, "step": step.id, "queue": step.task.queue,
                                   "at": local_iso(e.next_at, tz),
                                   "due_at": local_iso(_due(step.task.queue, as_utc(e.next_at),
                                                            step.task.due_within), tz),
                                   "source": "store (waiting for its moment)"})

        report_journeys = []
        for lj in sorted(journeys, key=lambda j: (-j.journey.priority, j.id)):
            j = lj.journey
            enabled = switches.get(j.id, j.enabled)
            tier_ok = not j.audience.tiers or facts.tier in j.audience.tiers
            cond = j.audience.when
            scoped = _scoped_verdicts(session, j, cid, facts.fact, now)
            items: list[dict[str, Any]] = []
            if scoped is None:
                leaves = [vars(leaf) | {"text": leaf.describe()} for leaf in conditions.explain(cond, facts.fact, now)]
                # Conditions on event fields are judged per event, when it happens.
                per_event = any(f.startswith("event.") for f in (cond.fields() if cond else []))
                holds = None if per_event else rules.holds(cond, facts.fact, now)
            else:
                # Each policy or claim judged on its own: the leaves say which one they are about.
                kind, items = scoped
                label = "policy" if kind == "policies" else "claim"
                leaves = [{**leaf, "text": f"{item[label]}: {leaf['text']}", "item": item[label]} for item in items
                          for leaf in item["conditions"]]
                holds = any(item["holds"] for item in items)
            taken = {item["policy"] for item in items if item["holds"]} if scoped and scoped[0] == "policies" else None
            # A customer the re-entry rule keeps out has no next fire, or a later one, as the planner has it.
            start = _reentry_from(session, j, cid, at) if enabled else None
            fire_text, fire_at = _next_fire(session, j, cid, facts.fact, tz, start, taken) if start else (None, None)
            report_journeys.append({
                "journey": j.id, "name": j.name, "category": j.category, "priority": j.priority,
                "enabled": enabled, "entry": j.entry.kind, "tiers": j.audience.tiers or "all",
                "tier": facts.tier, "tier_ok": tier_ok, "conditions": leaves, "conditions_hold": holds,
                **({scoped[0]: items} if scoped is not None else {}),
                "in_audience": (tier_ok and holds is not False) if enabled else False,
                "entered_in_window": audience_seen.get((cid, j.id)),
                "next_fire": fire_text,
                # An event entry fires on its event, named here for a page to put in words.
                "entry_event": j.entry.event.type if j.entry.event is not None and enabled else None,
                "next_task": _next_task(j, tz, at, planned_tasks, stored_tasks, held_tasks,
                                        fire_at if enabled and tier_ok and holds is not False else None),
                "version": lj.version[:8] + (" (last good version; file invalid)" if j.id in in_force.fallbacks
                                             else ""),
            })

        stored = session.execute(select(Touch).where(
            col(Touch.customer_id) == cid, col(Touch.planned_for) > at - SPAN_BEFORE,
            col(Touch.planned_for) <= at + SPAN_AFTER).order_by(col(Touch.due_at))).scalars().all()
        decisions: list[dict[str, Any]] = [{
            "journey": d.wanted.journey_id, "step": d.wanted.step_id, "key": d.wanted.key,
            "planned_for": local_iso(d.wanted.planned_for, tz), "due_at": local_iso(d.due_at, tz),
            "status": d.status, "channel": d.channel, "fallback_channels": d.fallback_channels,
            "rule": d.dropped_by or d.moved_by, "reason": d.reason, "source": "dry run",
        } for d in planned]
        decisions += [{
            "journey": t.journey_id, "step": t.step_id, "key": t.key, "planned_for": local_iso(t.planned_for, tz),
            "due_at": local_iso(t.due_at, tz), "status": t.status, "channel": t.channel,
            "fallback_channels": t.fallback_channels,
            "rule": (t.error_reason or "").split(":", 1)[0] if t.status == "dropped" else (
                "quiet_hours" if as_utc(t.due_at) != as_utc(t.planned_for) else None),
            "reason": t.error_reason or "", "source": "store"} for t in stored]
        upcoming = sorted((d for d in decisions if d["status"] != "dropped" and d["due_at"] >= local_iso(at, tz)),
                          key=lambda d: d["due_at"])
        return {
            "customer": customer_external_id, "name": mask_name(name), "tier": facts.tier, "timezone": tz,
            "at": local_iso(at, tz),
            "consent": facts.reach.consent, "reachable": facts.reach.reachable,
            "journeys": report_journeys, "touches": decisions,
            "next": upcoming[0] if upcoming else None,
        }


def _tier_words(tier: str | None) -> str:
    """A customer not yet scored (or imported with an empty tier) has no tier: said in words."""
    return f"tier {tier}" if tier else "no tier"


def _actual(value: Any) -> str:
    return "no value" if value is None else f"actual {value!r}"


def _audience_tiers(tiers: list[str] | str) -> str:
    return tiers if isinstance(tiers, str) else ", ".join(tiers)


def render(report: dict[str, Any], console: Console) -> None:
    console.print(f"{report['customer']} ({report['name']}) · {_tier_words(report['tier'])} · {report['timezone']} · "
                  f"at {report['at']}", markup=False)
    consent = ", ".join(f"{ch}={'yes' if ok else 'no'}{'' if report['reachable'][ch] else ' (unreachable)'}"
                        for ch, ok in report["consent"].items())
    console.print(f"consent: {consent}", markup=False)
    table = Table(title="Journeys")
    for column in ("journey", "enabled", "audience", "conditions", "next fire", "next task"):
        table.add_column(column, overflow="fold")
    for j in report["journeys"]:
        leaves = "\n".join(f"{'✔' if leaf['passed'] else '✘'} {leaf['text']} ({_actual(leaf['actual'])})"
                           for leaf in j["conditions"]) or "-"
        for item in j.get("policies", []) + j.get("claims", []):
            leaves += f"\n→ {item.get('policy') or item.get('claim')}: {'holds' if item['holds'] else 'does not hold'}"
        tier = f"{_tier_words(j['tier'])}, {'in' if j['tier_ok'] else 'not in'} {_audience_tiers(j['tiers'])}"
        task = j["next_task"]
        table.add_row(j["journey"], "yes" if j["enabled"] else "no",
                      ("yes" if j["in_audience"] else "no") + f"\n{tier}", leaves, str(j["next_fire"] or "-"),
                      f"{task['queue']} due {task['due_at']} ({task['source']})" if task else "-")
    console.print(table)
    touches = Table(title="Touches and delivery rules")
    for column in ("journey/step", "planned for", "due", "status", "channel", "rule", "why", "source"):
        touches.add_column(column, overflow="fold")
    for d in report["touches"]:
        touches.add_row(f"{d['journey']}/{d['step']}", d["planned_for"], d["due_at"], d["status"], d["channel"],
                        d["rule"] or "-", d["reason"] or "-", d["source"])
    console.print(touches)
    nxt = report["next"]
    console.print(f"next: {nxt['journey']}/{nxt['step']} on {nxt['channel']} at {nxt['due_at']}" if nxt
                  else "next: nothing planned in the coming week", markup=False)
