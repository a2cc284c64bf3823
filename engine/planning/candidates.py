"""Candidates: which customers a chunk concerns, narrowed in SQL before any step runs.

Entrants are found in bulk per journey, each in its own window (a run plans a journey's
entries ahead of ``now`` only when no event can change who enters, ``engine.planning.lookahead``):
by tier and by time zone where the journey's schedule or holiday fires in the window, by
``birth_md`` codes for birthdays, by expiry or settlement date ranges, and from unprocessed
events reported up to ``now``. Those already enrolled in that occurrence are dropped here; the
audience conditions are judged for the rest at their due time, and the re-entry rule once the
customer's earlier entries of the run are known. Enrollments under way come back when their
wait ends within what the run may decide, or an event they may be waiting on arrived; their
customers' events are read for goals and ``wait_for`` steps.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, literal_column, or_
from sqlalchemy import select as _sa_select
from sqlmodel import Session, col

from engine.language.conditions import epoch_seconds
from engine.language.validation import LoadedJourney
from engine.planning import rules
from engine.planning.anchored_entrants import anchored_entrants
from engine.planning.facts import (
    POLICY_FACT_COLUMNS,
    CustomerFacts,
    claim_fact,
    event_fact,
    facts_at,
    fetch_rows,
    id_filter,
    policy_fact,
)
from engine.planning.lookahead import Lookahead
from engine.planning.occurrences import (
    anchor_date_range,
    anchor_fire,
    birth_md_candidates,
    birthday_fires,
    cron_fires,
    holiday_fires,
    local_naive,
)
from engine.planning.plan_output import ChunkOutput, PlannedEnrollment
from engine.planning.step_machine import CustomerEvent, duration
from store.clock import as_utc, zone
from store.models import Claim, Customer, Enrollment, Event, Policy, claim_product_line

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select

ALL_SOURCES = frozenset({"schedule", "date", "enrollments", "events"})


@dataclass(slots=True)
class Entrant:
    customer_id: int
    journey: LoadedJourney
    occurrence: str
    due: datetime
    scope: dict[str, Any]
    event_id: int | None = None
    journey_id: str = ""  # journey.id, kept plain so that sorting needs no property call

    def __post_init__(self) -> None:
        self.journey_id = self.journey.journey.id


# The order entrants are taken in: by due time, then journey, then customer.
ENTRY_ORDER = operator.attrgetter("due", "journey_id", "customer_id")


@dataclass(slots=True)
class Waiting:
    """An enrollment waiting for its time (or an event), ready for the step machine to resume."""

    enrollment: PlannedEnrollment  # its existing_id and previous_next_at guard the row's update
    next_at: datetime  # when the wait ends, as the row says (the machine moves the enrollment's)
    scope: dict[str, Any]  # the entry's policy, claim or event facts, and the last wait_for event's


@dataclass(slots=True)
class EntryHistory:
    """The earlier entries the re-entry rule looks at, for the customers and journeys of a chunk."""

    entered: dict[tuple[int, str], list[datetime]]  # (customer, journey) → entered_at
    ever: set[tuple[int, str]]  # (customer, journey) of "once ever" journeys entered before

    def admits(self, e: Entrant) -> bool:
        """Whether ``e`` may enter under its journey's re-entry rule; if so it counts from now on."""
        reentry = e.journey.journey.reentry
        if reentry.allowed and not reentry.after:
            return True  # once per occurrence, which the store's unique key already holds to
        k = (e.customer_id, e.journey.id)
        earlier = self.entered.get(k, [])
        if not reentry.allowed and (k in self.ever or earlier):
            return False
        if reentry.after and any(e.due - prev < duration(reentry.after) for prev in earlier if prev <= e.due):
            return False
        self.entered.setdefault(k, []).append(e.due)
        return True


class Candidates:
    """The narrowing queries of one planner: its journeys, window (start, end] and sources."""

    def __init__(
        self,
        session: Session,
        journeys: Sequence[LoadedJourney],
        start: datetime,
        end: datetime,
        *,
        sources: frozenset[str] = ALL_SOURCES,
        customer_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
        now: datetime | None = None,
        start_now: datetime | None = None,
        look: Lookahead | None = None,
        entries_again: dict[str, datetime] | None = None,
    ) -> None:
        self.session = session
        # Journey id → the moment after which its entries judged ahead are taken again (an edit took back
        # those judged under the old file, ``engine.language.journey_edits``).
        self.entries_again = entries_again or {}
        self.journeys = list(journeys)
        self.start = start
        self.end = end
        self.now = now if now is not None else end
        self.start_now = start_now if start_now is not None else start
        self.look = look or Lookahead(self.journeys)
        self.sources = sources
        self.customer_ids = customer_ids
        self.event_ids = event_ids
        # The distinct zones of the book (set by the run, once for all chunks) or of the
        # customers the run is for (read when first needed).
        self.timezones: list[str] | None = None
        self._zone_rows: tuple[tuple[int, int, int | None], Sequence[Any]] | None = None

    def window(self, lj: LoadedJourney) -> tuple[datetime, datetime]:
        """(lo, hi]: the due times of ``lj``'s schedule or date entries this run takes. Ahead
        of ``now`` only for a journey whose audience no event changes."""
        if self.look.of(lj.id).entry_ahead:
            again = self.entries_again.get(lj.id)
            return (self.start if again is None else min(self.start, again)), self.end
        return self.start_now, self.now

    def zones(self) -> list[str]:
        zones = self.timezones
        if zones is None:
            ids = self.customer_ids or []
            zones = [tz for (tz,) in self.session.execute(
                select(Customer.timezone).where(col(Customer.id).in_(ids)).distinct()).all()]
            self.timezones = zones
        return zones

    # -- who enters -------------------------------------------------------------------------------

    def _customer_scope(self, lo: int, hi: int, ids: Sequence[int] | None) -> Any:
        # An anonymised customer keeps its row (tier, zone, policies) for the figures, and enters nothing.
        return and_(id_filter(col(Customer.id), lo, hi, ids), col(Customer.anonymised_at).is_(None))

    def _in_zones(self, lo: int, hi: int, ids: Sequence[int] | None, tiers: Sequence[str] | None,
                  zones: list[str]) -> list[tuple[int, str]]:
        """(id, zone) of the chunk's customers in ``tiers`` (all when empty) living in ``zones``.

        Every cadence journey asks this of the same chunk; the zone is not indexed, so each
        asking in SQL read the chunk's customer rows again (the table is the largest in the
        store). The chunk's (id, tier, zone) are read once and filtered here instead.
        """
        key = (lo, hi, None if ids is None else id(ids))
        if self._zone_rows is None or self._zone_rows[0] != key:
            self._zone_rows = (key, fetch_rows(self.session, select(Customer.id, Customer.tier, Customer.timezone)
                                               .where(self._customer_scope(lo, hi, ids))))
        wanted_tiers = set(tiers) if tiers else None
        wanted_zones = set(zones)
        return [(cid, tz) for cid, tier, tz in self._zone_rows[1]
                if tz in wanted_zones and (wanted_tiers is None or tier in wanted_tiers)]

    def entrants(self, lo: int, hi: int, ids: Sequence[int] | None) -> list[Entrant]:
        out: list[Entrant] = []
        self._zone_rows = None
        for lj in self.journeys:
            j = lj.journey
            first, last = self.window(lj)
            if first >= last:
                continue
            tiers = j.audience.tiers
            tier_clause = col(Customer.tier).in_(tiers) if tiers else True
            if j.entry.schedule is not None and "schedule" in self.sources:
                fires = {tz: cron_fires(j.entry.schedule.cron, tz, first, last) for tz in self.zones()}
                zones = [tz for tz, f in fires.items() if f]
                if not zones:
                    continue
                for cid, tz in self._in_zones(lo, hi, ids, tiers, zones):
                    for label, due in fires[tz]:
                        out.append(Entrant(cid, lj, label, due, {}))
            elif j.entry.date is not None and "date" in self.sources:
                out.extend(self._date_entrants(lj, lo, hi, ids, tier_clause, first, last))
        return out

    def _date_entrants(self, lj: LoadedJourney, lo: int, hi: int, ids: Sequence[int] | None,
                       tier_clause: Any, start: datetime, end: datetime) -> list[Entrant]:
        entry = lj.journey.entry.date
        assert entry is not None
        out: list[Entrant] = []
        if entry.anchor == "customer.birthday":
            codes = birth_md_candidates(start, end, entry.offset, entry.on_non_working_day)
            rows = fetch_rows(self.session, select(Customer.id, Customer.timezone, Customer.birthday).where(
                self._customer_scope(lo, hi, ids), tier_clause, col(Customer.birth_md).in_(codes)))
            for cid, tz, birthday in rows:
                if birthday is None:
                    continue
                for label, due in birthday_fires(birthday, entry.at, entry.offset, tz, start, end,
                                                 entry.on_non_working_day):
                    out.append(Entrant(cid, lj, label, due, {}))
        elif entry.anchor == "holiday":
            fires = {tz: holiday_fires(list(entry.holidays or []), entry.at, entry.offset, tz, start, end,
                                       entry.on_non_working_day)
                     for tz in self.zones()}
            zones = [tz for tz, f in fires.items() if f]
            if zones:
                for cid, tz in self._in_zones(lo, hi, ids, lj.journey.audience.tiers, zones):
                    for label, due in fires[tz]:
                        out.append(Entrant(cid, lj, label, due, {}))
        elif entry.every is not None or entry.anchor not in ("policy.expiry_date", "claim.settled_at"):
            # Any other policy date, a date attribute, or an anniversary (engine.planning.anchored_entrants).
            out.extend(Entrant(cid, lj, occurrence, due, scope) for cid, occurrence, due, scope in anchored_entrants(
                self.session, entry, self._customer_scope(lo, hi, ids), tier_clause, start, end))
        elif entry.anchor == "policy.expiry_date":
            first, last = anchor_date_range(start, end, entry.offset, entry.on_non_working_day)
            rows = self.session.execute(
                select(Policy.id, Policy.customer_id, Customer.timezone, *POLICY_FACT_COLUMNS)
                .join(Customer, col(Customer.id) == col(Policy.customer_id))
                .where(self._customer_scope(lo, hi, ids), tier_clause, Policy.status == "active",
                       col(Policy.expiry_date) >= first, col(Policy.expiry_date) <= last)).all()
            for row in rows:
                due = anchor_fire(row.expiry_date, entry.at, entry.offset, row.timezone, entry.on_non_working_day)
                if start < due <= end:
                    out.append(Entrant(row.customer_id, lj, f"policy-{row.id}-{row.expiry_date.isoformat()}", due,
                                        policy_fact(row)))
        else:  # claim.settled_at
            first, last = anchor_date_range(start, end, entry.offset, entry.on_non_working_day)
            rows = self.session.execute(
                select(Claim.id, Claim.customer_id, Customer.timezone, Claim.amount, Claim.status, Claim.filed_at,
                       Claim.settled_at, claim_product_line(), Claim.external_id)
                .join(Customer, col(Customer.id) == col(Claim.customer_id))
                .outerjoin(Policy, col(Policy.id) == col(Claim.policy_id))
                .where(self._customer_scope(lo, hi, ids), tier_clause, Claim.status == "settled",
                       col(Claim.settled_at) >= datetime.combine(first, datetime.min.time(), tzinfo=zone("UTC")),
                       col(Claim.settled_at) < datetime.combine(last, datetime.min.time(), tzinfo=zone("UTC"))
                       + timedelta(days=1))).all()
            for row in rows:
                settled_local = local_naive(row.settled_at, row.timezone).date()
                due = anchor_fire(settled_local, entry.at, entry.offset, row.timezone, entry.on_non_working_day)
                if start < due <= end:
                    out.append(Entrant(row.customer_id, lj, f"claim-{row.id}", due,
                                        claim_fact(row.amount, row.status, row.filed_at, row.settled_at,
                                                   row.product_line, row.external_id)))
        return out

    def event_entrants(self, lo: int, hi: int, ids: Sequence[int] | None) -> tuple[list[Entrant], list[int]]:
        by_type: dict[str, list[LoadedJourney]] = defaultdict(list)
        for lj in self.journeys:
            if lj.journey.entry.event is not None:
                by_type[lj.journey.entry.event.type].append(lj)
        query = select(Event.id, Event.customer_id, Event.type, Event.data, Event.occurred_at).where(
            id_filter(col(Event.customer_id), lo, hi, ids), col(Event.occurred_at) <= self.now)
        if self.event_ids is not None:
            query = query.where(col(Event.id).in_(self.event_ids))
        else:
            query = query.where(col(Event.processed_at).is_(None))
        rows = self.session.execute(query).all()
        read = [r.id for r in rows]
        # Events of an anonymised customer (reported under its anonymised-<id>) are marked processed
        # with the others, and start nothing.
        gone = set(self.session.execute(select(Customer.id).where(
            col(Customer.id).in_({r.customer_id for r in rows}), col(Customer.anonymised_at).is_not(None))
        ).scalars()) if rows else set()
        rows = [r for r in rows if r.customer_id not in gone] if gone else rows
        out: list[Entrant] = []
        claims = self._claims_named([(r.data or {}).get("claim_id") for r in rows if r.type.startswith("claim.")])
        for r in rows:
            for lj in by_type.get(r.type, []):
                scope = _event_scope(r.type, as_utc(r.occurred_at), dict(r.data or {}), claims)
                out.append(Entrant(r.customer_id, lj, f"event-{r.id}", as_utc(r.occurred_at), scope, r.id))
        return out, read

    def _claims_named(self, external_ids: Sequence[Any]) -> dict[str, Any]:
        """Claims by external id (with their policy's product line), for ``claim.*`` event scopes."""
        wanted = sorted({str(x) for x in external_ids if x})
        claims: dict[str, Any] = {}
        for i in range(0, len(wanted), 5000):
            for row in self.session.execute(
                select(Claim.external_id, Claim.amount, Claim.status, Claim.filed_at, Claim.settled_at,
                       claim_product_line()).outerjoin(Policy, col(Policy.id) == col(Claim.policy_id))
                .where(col(Claim.external_id).in_(wanted[i : i + 5000]))).all():
                claims[row.external_id] = row
        return claims

    def not_yet_entered(self, lo: int, hi: int, ids: Sequence[int] | None,
                        entrants: list[Entrant]) -> tuple[list[Entrant], EntryHistory]:
        """Entrants not already enrolled in their occurrence, and the earlier entries their
        re-entry rule looks at (judged once their audience is, ``EntryHistory.admits``)."""
        if not entrants:
            return entrants, EntryHistory({}, set())
        journeys = sorted({e.journey.id for e in entrants})
        lookback = max((duration(e.journey.journey.reentry.after) for e in entrants
                        if e.journey.journey.reentry.after), default=timedelta(0))
        since = min(e.due for e in entrants) - lookback - timedelta(seconds=1)
        cids = sorted({e.customer_id for e in entrants})
        rows = fetch_rows(self.session,
            select(Enrollment.customer_id, Enrollment.journey_id, Enrollment.occurrence, Enrollment.entered_at).where(
                id_filter(col(Enrollment.customer_id), lo, hi, cids), col(Enrollment.journey_id).in_(journeys),
                col(Enrollment.entered_at) > since))
        by_id = {e.journey.id: e.journey.journey for e in entrants}
        # Journeys whose re-entry rule looks at earlier entries (once ever, or a minimum gap).
        ruled = {j for j in journeys if not by_id[j].reentry.allowed or by_id[j].reentry.after}
        seen: set[tuple[int, str, str]] = set()
        entries: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        for cid, jid, occ, entered in rows:
            seen.add((cid, jid, occ))
            if jid in ruled:
                entries[(cid, jid)].append(as_utc(entered))
        once = [j for j in journeys if not by_id[j].reentry.allowed]
        ever: set[tuple[int, str]] = set()
        if once:
            ever = {(cid, jid) for cid, jid in self.session.execute(
                select(Enrollment.customer_id, Enrollment.journey_id).where(
                    id_filter(col(Enrollment.customer_id), lo, hi, cids), col(Enrollment.journey_id).in_(once))
                .distinct()).all()}
        kept: list[Entrant] = []
        for e in entrants:
            # Once per occurrence always holds: it is all ``per: occurrence`` asks, so two holidays
            # on one day (two occurrences) both enter; ``after`` adds a minimum gap on top.
            k = (e.customer_id, e.journey.id, e.occurrence)
            if k in seen:
                continue
            seen.add(k)
            kept.append(e)
        return kept, EntryHistory(dict(entries), ever)

    def in_audience(
        self, entrants: list[Entrant], facts: dict[int, CustomerFacts], out: ChunkOutput
    ) -> list[Entrant]:
        """Entrants whose journey's audience (tiers and conditions, judged at their due time) takes
        them. Conditions on an attribute some update step sets are left for the step machine's turn
        (``audience_holds``): an update earlier in the run may change them."""
        by_journey: dict[str, list[Entrant]] = defaultdict(list)
        kept: list[Entrant] = []
        for e in entrants:
            cf = facts.get(e.customer_id)
            if cf is None:
                continue
            tiers = e.journey.journey.audience.tiers
            if tiers and cf.tier not in tiers:
                out.audience[(e.customer_id, e.journey.id)] = False
                continue
            if self.look.of(e.journey.id).reads_updated:
                kept.append(e)
            else:
                by_journey[e.journey.id].append(e)
        for group in by_journey.values():
            j = group[0].journey.journey
            conds = _audience_conditions(j)
            passing = [True] * len(group)
            for cond in conds:
                todo = [i for i, ok in enumerate(passing) if ok]
                if not todo:
                    break
                results = rules.evaluate_many(
                    cond, [_with_scope(facts_at(facts[group[i].customer_id], group[i].due), group[i].scope)
                           for i in todo],
                    [epoch_seconds(group[i].due) for i in todo])
                for i, ok in zip(todo, results, strict=True):
                    passing[i] = ok
            for e, ok in zip(group, passing, strict=True):
                out.audience[(e.customer_id, e.journey.id)] = ok
                if ok:
                    kept.append(e)
        return kept

    def audience_holds(self, e: Entrant, cf: CustomerFacts, out: ChunkOutput) -> bool:
        """``in_audience`` for one entrant whose conditions were left for its turn."""
        if not self.look.of(e.journey.id).reads_updated:
            return True
        fact = _with_scope(facts_at(cf, e.due), e.scope)
        ok = all(rules.holds(c, fact, epoch_seconds(e.due)) for c in _audience_conditions(e.journey.journey))
        out.audience[(e.customer_id, e.journey.id)] = ok
        return ok

    # -- journeys under way -----------------------------------------------------------------------

    def waiting(self, lo: int, hi: int, ids: Sequence[int] | None, event_rows: list[int]) -> list[Waiting]:
        journeys = {lj.id: lj for lj in self.journeys}
        if not journeys:
            return []
        clauses = self.wait_ends()
        if "events" in self.sources and event_rows:
            # An event may end a wait_for or reach a goal before the enrollment's own time.
            types = sorted({t for (t,) in self.session.execute(
                select(Event.type).where(col(Event.id).in_(event_rows)).distinct()).all()})
            waiting_on = set()
            for lj in self.journeys:
                if lj.journey.goal is not None and lj.journey.goal.event in types:
                    waiting_on.add(lj.id)
                if any(s.wait_for is not None and s.wait_for.event in types for s in lj.journey.steps):
                    waiting_on.add(lj.id)
            if waiting_on:
                cids = sorted({cid for (cid,) in self.session.execute(
                    select(Event.customer_id).where(col(Event.id).in_(event_rows)).distinct()).all()})
                clauses.append(and_(col(Enrollment.journey_id).in_(sorted(waiting_on)),
                                    col(Enrollment.customer_id).in_(cids)))
        if not clauses:
            return []
        rows = self.session.execute(select(
            Enrollment.id, Enrollment.customer_id, Enrollment.journey_id, Enrollment.journey_version,
            Enrollment.occurrence, Enrollment.step_id, Enrollment.state, Enrollment.next_at, Enrollment.split_branch,
            Enrollment.entered_at, Enrollment.entry_rule, Enrollment.step_started_at, Enrollment.scope_event_id,
            Enrollment.event_id).where(
            # The literal lets the databases use the partial index over waiting rows.
            id_filter(col(Enrollment.customer_id), lo, hi, ids), col(Enrollment.state) == literal_column("'waiting'"),
            col(Enrollment.journey_id).in_(sorted(journeys)), or_(*clauses))).all()
        scopes = self._scopes(rows)
        out: list[Waiting] = []
        for r in rows:
            next_at = as_utc(r.next_at)
            started = as_utc(r.step_started_at) if r.step_started_at is not None else None
            out.append(Waiting(PlannedEnrollment(
                r.customer_id, r.journey_id, r.journey_version, r.occurrence, r.step_id, r.state, next_at,
                r.split_branch, as_utc(r.entered_at), None, None, r.entry_rule, existing_id=r.id,
                previous_next_at=next_at, step_started_at=started, scope_event_id=r.scope_event_id,
                event_id=r.event_id if r.event_id is not None or not r.occurrence.startswith("event-")
                else int(r.occurrence.split("-", 1)[1])),
                next_at, scopes.get(r.id, {})))
        return out

    def wait_ends(self) -> list[Any]:
        """The conditions on a waiting enrollment whose wait ends by time within what the run may
        decide (any one suffices); ``engine.planning.due_chunks`` asks them of the whole book."""
        clauses = []
        # A run for given customers (an event's) brings them up to ``now`` whatever its sources:
        # what they had due before the event happens before it.
        if "enrollments" in self.sources or self.customer_ids is not None:
            clauses.append(col(Enrollment.next_at) <= self.now)
        if "enrollments" in self.sources and self.end > self.now:
            ahead = [and_(col(Enrollment.journey_id) == lj.id, col(Enrollment.step_id).in_(sorted(resumable)))
                     for lj in sorted(self.journeys, key=lambda lj: lj.id)
                     if (resumable := self.look.of(lj.id).resumable)]
            if ahead:
                clauses.append(and_(col(Enrollment.next_at) <= self.end, col(Enrollment.step_started_at).is_not(None),
                                    or_(*ahead)))
        return clauses

    def _scopes(self, rows: Sequence[Any]) -> dict[int, dict[str, Any]]:
        """The facts each resumed enrollment had in scope: those of its entry (the event that
        started it, or the policy or claim its date entry is anchored on), then those of the
        event its last ``wait_for`` ended on; by enrollment id."""
        event_ids: set[int] = set()
        policy_ids: set[int] = set()
        claim_ids: set[int] = set()
        for r in rows:
            kind, _, rest = r.occurrence.partition("-")
            if kind == "event":
                event_ids.add(int(rest))
            elif kind == "policy":
                policy_ids.add(int(rest.split("-", 1)[0]))
            elif kind == "claim":
                claim_ids.add(int(rest))
            if r.scope_event_id is not None:
                event_ids.add(int(r.scope_event_id))
        events: dict[int, tuple[str, datetime, dict[str, Any]]] = {}
        for chunk in _batches(sorted(event_ids)):
            for ev_id, ev_type, occurred, data in self.session.execute(
                select(Event.id, Event.type, Event.occurred_at, Event.data).where(col(Event.id).in_(chunk))).all():
                events[ev_id] = (ev_type, as_utc(occurred), dict(data or {}))
        claims = self._claims_named([d.get("claim_id") for t, _, d in events.values() if t.startswith("claim.")])
        policies: dict[int, dict[str, Any]] = {}
        for chunk in _batches(sorted(policy_ids)):
            for row in self.session.execute(select(Policy.id, *POLICY_FACT_COLUMNS)
                                            .where(col(Policy.id).in_(chunk))).all():
                policies[row.id] = policy_fact(row)
        settled: dict[int, dict[str, Any]] = {}
        for chunk in _batches(sorted(claim_ids)):
            for row in self.session.execute(select(
                Claim.id, Claim.amount, Claim.status, Claim.filed_at, Claim.settled_at, claim_product_line(),
                Claim.external_id)
                .outerjoin(Policy, col(Policy.id) == col(Claim.policy_id)).where(col(Claim.id).in_(chunk))).all():
                settled[row.id] = claim_fact(row.amount, row.status, row.filed_at, row.settled_at, row.product_line,
                                             row.external_id)
        out: dict[int, dict[str, Any]] = {}
        for r in rows:
            kind, _, rest = r.occurrence.partition("-")
            scope: dict[str, Any] = {}
            if kind == "event" and int(rest) in events:
                scope = _event_scope(*events[int(rest)], claims)
            elif kind == "policy":
                scope = dict(policies.get(int(rest.split("-", 1)[0]), {}))
            elif kind == "claim":
                scope = dict(settled.get(int(rest), {}))
            if r.scope_event_id is not None and r.scope_event_id in events:
                ev_type, occurred, data = events[r.scope_event_id]
                scope = {**scope, **event_fact(ev_type, occurred, data)}
            if scope:
                out[r.id] = scope
        return out

    def customer_events(self, lo: int, hi: int, customer_ids: list[int], entrants: list[Entrant],
                        waiting: list[Waiting]) -> dict[int, list[CustomerEvent]]:
        types: set[str] = set()
        involved = {e.journey.id for e in entrants} | {w.enrollment.journey_id for w in waiting}
        for lj in self.journeys:
            if lj.id not in involved:
                continue
            if lj.journey.goal is not None:
                types.add(lj.journey.goal.event)
            types.update(s.wait_for.event for s in lj.journey.steps if s.wait_for is not None)
        if not types or not customer_ids:
            return {}
        since = min([e.due for e in entrants] + [min(w.enrollment.entered_at, w.enrollment.step_started_at or w.next_at)
                                                  for w in waiting])
        rows = self.session.execute(select(
            Event.id, Event.customer_id, Event.type, Event.data, Event.occurred_at, Event.processed_at).where(
            id_filter(col(Event.customer_id), lo, hi, customer_ids), col(Event.type).in_(sorted(types)),
            col(Event.occurred_at) > since, col(Event.occurred_at) <= self.now)).all()
        out: dict[int, list[CustomerEvent]] = defaultdict(list)
        for r in rows:
            out[r.customer_id].append(CustomerEvent(r.id, r.type, as_utc(r.occurred_at), dict(r.data or {}),
                                                    r.processed_at is not None))
        for evs in out.values():
            evs.sort(key=lambda ev: (ev.occurred_at, ev.id))
        return out


def _batches(ids: list[int], size: int = 5000) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _audience_conditions(journey: Any) -> list[Any]:
    return [c for c in (journey.audience.when, journey.entry.event.when if journey.entry.event else None)
            if c is not None]


def _with_scope(fact: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    return {**fact, **scope} if scope else fact


def _event_scope(event_type: str, occurred_at: datetime, data: dict[str, Any],
                 claims: dict[str, Any]) -> dict[str, Any]:
    """What an event puts in scope: its own fields and, for a ``claim.*`` event, the claim's; and the policy
    or claim it names, which the enrollment is then about (``engine.planning.facts.about_another``)."""
    scope = event_fact(event_type, occurred_at, data)
    if event_type.startswith("claim."):
        c = claims.get(str(data.get("claim_id")))
        scope.update(claim_fact(c.amount, c.status, c.filed_at, c.settled_at, c.product_line) if c else
                     claim_fact(data.get("amount"), None, None, None, data.get("product_line")))
    for kind in ("policy", "claim"):
        named = data.get(f"{kind}_id")
        if named not in (None, ""):
            scope[f"{kind}.external_id"] = str(named)
    return scope
