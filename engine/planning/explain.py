"""``journeys explain``: why a customer does or does not get each journey's touches.

For every journey in force: whether it runs, whether the customer is in its audience (tier
and each condition leaf with the customer's actual value and pass/fail), when it would next
fire for them, and what the delivery rules did to the touches around the moment asked about:
a dry run for this one customer over (at - 1 day, at + 7 days], plus the touches already in
the store in that span (held/moved by quiet hours, dropped for consent or the cap, and why).
Nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlmodel import Session, col

from engine.language import conditions
from engine.language.journey_model import Journey
from engine.planning import rules
from engine.planning.facts import load_customers
from engine.planning.occurrences import anchor_fire, birthday_fires, holiday_fires, next_cron_fire
from engine.planning.planner import ChunkOutput, Planner, active_journeys, conditions_of, local_iso, switched_on
from store.clock import as_utc
from store.db import get_engine
from store.masking import mask_name
from store.models import Customer, Policy, Touch

SPAN_BEFORE = timedelta(days=1)
SPAN_AFTER = timedelta(days=7)


class UnknownCustomer(LookupError):
    pass


def _next_fire(session: Session, journey: Journey, customer_id: int, fact: dict[str, Any], tz: str,
               at: datetime) -> str | None:
    entry = journey.entry
    if entry.schedule is not None:
        return local_iso(next_cron_fire(entry.schedule.cron, tz, at)[1], tz)
    if entry.event is not None:
        return f"on event {entry.event.type}"
    assert entry.date is not None
    horizon = at + timedelta(days=400)
    if entry.date.anchor == "customer.birthday":
        birthday = fact.get("customer.birthday")
        if birthday is None:
            return None
        fires = birthday_fires(birthday, entry.date.at, entry.date.offset, tz, at, horizon,
                               entry.date.on_non_working_day)
        return local_iso(fires[0][1], tz) if fires else None
    if entry.date.anchor == "holiday":
        fires = holiday_fires(list(entry.date.holidays or []), entry.date.at, entry.date.offset, tz, at, horizon,
                              entry.date.on_non_working_day)
        return f"{fires[0][0]} {local_iso(fires[0][1], tz)}" if fires else None
    if entry.date.anchor == "policy.expiry_date":
        expiries = session.execute(select(col(Policy.expiry_date)).where(
            col(Policy.customer_id) == customer_id, col(Policy.status) == "active")).scalars().all()
        shift = entry.date.on_non_working_day
        dues = sorted(d for d in (anchor_fire(e, entry.date.at, entry.date.offset, tz, shift) for e in expiries)
                      if d > at)
        return local_iso(dues[0], tz) if dues else None
    return "30 days after a claim settles" if entry.date.offset == "30d" else f"claim settled {entry.date.offset}"


def explain(customer_external_id: str, at: datetime, url: str | None = None) -> dict[str, Any]:
    from engine.language.journey_registry import load_delivery_config, load_in_force

    at = as_utc(at)
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
        facts = load_customers(session, cid, cid, [cid], needed, at)[cid]
        name = session.execute(select(col(Customer.name)).where(col(Customer.id) == cid)).scalar_one()
        now = conditions.epoch_seconds(at)
        tz = facts.timezone

        chunks: list[ChunkOutput] = []
        running = active_journeys(session, journeys)
        Planner(session, running, load_delivery_config(), at - SPAN_BEFORE, at + SPAN_AFTER, dry_run=True,
                customer_ids=[cid], sink=chunks.append).run()
        session.rollback()
        planned = [d for c in chunks for d in c.decisions]
        audience_seen = {k: v for c in chunks for k, v in c.audience.items()}

        report_journeys = []
        for lj in sorted(journeys, key=lambda j: (-j.journey.priority, j.id)):
            j = lj.journey
            enabled = switches.get(j.id, j.enabled)
            tier_ok = not j.audience.tiers or facts.tier in j.audience.tiers
            cond = j.audience.when
            leaves = [vars(leaf) | {"text": leaf.describe()} for leaf in conditions.explain(cond, facts.fact, now)]
            # Conditions on policy/claim/event fields are judged per policy, claim or event at plan time.
            scoped = any(not f.startswith("customer.") for f in (cond.fields() if cond else []))
            holds = None if scoped else rules.holds(cond, facts.fact, now)
            report_journeys.append({
                "journey": j.id, "name": j.name, "category": j.category, "priority": j.priority,
                "enabled": enabled, "entry": j.entry.kind, "tiers": j.audience.tiers or "all",
                "tier": facts.tier, "tier_ok": tier_ok, "conditions": leaves, "conditions_hold": holds,
                "in_audience": (tier_ok and holds is not False) if enabled else False,
                "entered_in_window": audience_seen.get((cid, j.id)),
                "next_fire": _next_fire(session, j, cid, facts.fact, tz, at) if enabled else None,
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


def render(report: dict[str, Any], console: Console) -> None:
    console.print(f"{report['customer']} ({report['name']}) · tier {report['tier']} · {report['timezone']} · "
                  f"at {report['at']}", markup=False)
    consent = ", ".join(f"{ch}={'yes' if ok else 'no'}{'' if report['reachable'][ch] else ' (unreachable)'}"
                        for ch, ok in report["consent"].items())
    console.print(f"consent: {consent}", markup=False)
    table = Table(title="Journeys")
    for column in ("journey", "enabled", "audience", "conditions", "next fire"):
        table.add_column(column)
    for j in report["journeys"]:
        leaves = "\n".join(f"{'✔' if leaf['passed'] else '✘'} {leaf['text']} (actual {leaf['actual']!r})"
                           for leaf in j["conditions"]) or "-"
        tier = f"tier {j['tier']} {'in' if j['tier_ok'] else 'not in'} {j['tiers']}"
        table.add_row(j["journey"], "yes" if j["enabled"] else "no",
                      ("yes" if j["in_audience"] else "no") + f"\n{tier}", leaves, str(j["next_fire"] or "-"))
    console.print(table)
    touches = Table(title="Touches and delivery rules")
    for column in ("journey/step", "planned for", "due", "status", "channel", "rule", "why", "source"):
        touches.add_column(column)
    for d in report["touches"]:
        touches.add_row(f"{d['journey']}/{d['step']}", d["planned_for"], d["due_at"], d["status"], d["channel"],
                        d["rule"] or "-", d["reason"] or "-", d["source"])
    console.print(touches)
    nxt = report["next"]
    console.print(f"next: {nxt['journey']}/{nxt['step']} on {nxt['channel']} at {nxt['due_at']}" if nxt
                  else "next: nothing planned in the coming week", markup=False)
