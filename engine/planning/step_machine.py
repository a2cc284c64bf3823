"""The step machine: moves one enrollment through its journey's steps, one moment at a time.

At a moment an enrollment takes every step it can without time passing: sends become wanted
touches (delivery rules decide them later, for the whole chunk), tasks and attribute updates
are planned, branches and splits choose the next step. A ``wait`` or a ``wait_for`` makes time
pass: the machine works out when the enrollment next has to act (the wait's end; the first
matching event or the timeout; a goal event before either) and hands that moment back, so that
the chunk planner takes every enrollment of a customer in the order of time (an update step
is seen by exactly the conditions judged after it). When that moment lies past what the run
may decide (``engine.planning.lookahead``), the enrollment is left waiting in the store: the
step it is at, since when (``step_started_at``) and when to look again (``next_at``).

Time is the planned moment throughout, never the wall clock, so a plan is reproducible. It
reads no database: candidates, facts and the customer's events are handed to it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.language.conditions import epoch_seconds
from engine.language.durations import parse_duration
from engine.language.engagement import engagement_facts
from engine.language.journey_model import Condition, Journey, Step
from engine.language.sla_clock import TaskClocks, current_clocks
from engine.language.validation import LoadedJourney
from engine.planning import rules
from engine.planning.delivery_rules import Decision, Wanted
from engine.planning.facts import CustomerFacts, about_another, event_fact, facts_at
from engine.planning.journeys_in_force import entry_rule
from engine.planning.lookahead import Lookahead
from engine.planning.plan_output import ChunkOutput, PlannedEnrollment, PlannedTask
from engine.planning.wait_until import wait_end
from store.models import WEBHOOK_CHANNEL

PRIORITY = {"high": 1, "normal": 2, "low": 3}


@dataclass
class CustomerEvent:
    """One of a customer's events that a goal or a ``wait_for`` step may be waiting on."""

    id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    # Acted on by an earlier run, which judged it for every enrollment then waiting on it (with the
    # attributes of its moment): a stored enrollment resumed later does not judge it again.
    processed: bool = False


# Durations and step graphs are asked for per enrollment and step; journeys hold a handful
# of distinct ones, so each is worked out once per process.
duration = functools.lru_cache(maxsize=1024)(parse_duration)


@dataclass(frozen=True)
class StepGraph:
    ids: dict[str, int]  # step id → index
    successors: list[list[str]]  # per step index, as Journey.successors gives them
    entry_rule: str


_graphs: dict[int, tuple[Journey, StepGraph]] = {}


def step_graph(journey: Journey) -> StepGraph:
    known = _graphs.get(id(journey))
    if known is not None and known[0] is journey:
        return known[1]
    graph = StepGraph({s.id: i for i, s in enumerate(journey.steps)},
                      [journey.successors(i) for i in range(len(journey.steps))], entry_rule(journey))
    if len(_graphs) > 10_000:  # journeys reloaded over and over in a long-lived process
        _graphs.clear()
    _graphs[id(journey)] = (journey, graph)  # the journey kept alive so its id is not reused
    return graph


def _wait_end(step: Step, since: datetime, facts: CustomerFacts, scope: dict[str, Any]) -> datetime:
    """When ``step``'s wait, begun at ``since``, ends (``engine.planning.wait_until``)."""
    wait = step.wait
    if isinstance(wait, str):
        return since + duration(wait)
    assert wait is not None
    return wait_end(wait, since, facts.timezone, {**facts.fact, **scope})


# Outcomes of a journey's own task or message (their data names the journey it came from).
OWN_OUTCOMES = ("task.completed", "message.delivered", "message.failed")


def answers(data: dict[str, Any], journey_id: str, occurrence: str) -> bool:
    """Whether an outcome answers an enrollment: it names no journey (another system's report), or this
    journey and, when it names one, this occurrence."""
    named, occ = data.get("journey"), data.get("occurrence")
    if named in (None, ""):
        return True
    return str(named) == journey_id and (occ in (None, "") or str(occ) == occurrence)


def _split_point(customer_id: int, journey_id: str, occurrence: str, step_id: str) -> float:
    """A stable number in [0, 100) per customer, journey, occurrence and step: the same
    customer lands in the same variant however often the plan runs."""
    digest = hashlib.sha1(f"{customer_id}:{journey_id}:{occurrence}:{step_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


# Where an enrollment is at a step (``Progress.mode``).
AT = "at"  # arrived at the step, which runs at ``since``
WAIT = "wait"  # inside a ``wait`` that began at ``since``
WAIT_FOR = "wait_for"  # inside a ``wait_for`` that began at ``since``


@dataclass(slots=True)
class Progress:
    """An enrollment while a run works on it: the step it is at, since when, and what it knows."""

    lj: LoadedJourney
    enrollment: PlannedEnrollment
    index: int
    since: datetime
    mode: str
    scope: dict[str, Any]  # the entry's policy/claim/event facts and the last wait_for event's
    wake_at: datetime | None = None  # when it next acts, and why (AT, "goal", "hit", "timeout", WAIT)
    wake_kind: str = AT
    hit: CustomerEvent | None = None
    # The end of the ``wait`` it is in: fixed when the wait begins (an anchor's date as it stands
    # then), so a run that picks the wait up later ends it where the one that began it would.
    wait_end: datetime | None = None
    changed: bool = field(default=False)  # whether the run moved it (a resumed one left as it was is not written)
    fresh: bool = False  # entered in this run (events acted on before it were never judged for it)
    # Events before this moment were judged for its wait_for or goal with the attributes of their
    # moment; an update step since changed what the conditions read (``rejudge``).
    judged_from: datetime | None = None


class StepMachine:
    """Moves enrollments through their steps up to what a run may decide: everything up to
    ``now`` (the events reported so far), and ahead of it up to ``horizon`` what no later event
    can change (``engine.planning.lookahead``)."""

    def __init__(self, now: datetime, horizon: datetime, out: ChunkOutput, look: Lookahead,
                 clocks: TaskClocks | None = None) -> None:
        self.now = now
        self.horizon = max(now, horizon)
        self.out = out
        self.look = look
        # Tasks are due on their queue's clock (business hours or wall time) from the moment they are planned.
        self.clocks = clocks or current_clocks()
        # A run plans its tasks at few distinct moments (one per cadence and zone), and a business
        # clock walks the work calendar for each: the (due, warn) of each (queue, start, window)
        # is worked out once (measured: 52 of 169 s of a profiled 100k-customer day without it).
        self._task_times: dict[tuple[str, datetime, str], tuple[datetime, datetime]] = {}

    def _times(self, queue: str, start: datetime, due_within: str) -> tuple[datetime, datetime]:
        """(due, warn) of a task of ``queue`` planned at ``start`` (``TaskClocks.times``, memoised)."""
        key = (queue, start, due_within)
        known = self._task_times.get(key)
        if known is None:
            known = self._task_times[key] = self.clocks.times(queue, start, duration(due_within))
        return known

    # -- where an enrollment starts ----------------------------------------------------------------

    def start(self, lj: LoadedJourney, enrollment: PlannedEnrollment, due: datetime,
              scope: dict[str, Any]) -> Progress:
        """A new entrant, at its first step at its due time."""
        return Progress(lj, enrollment, 0, due, AT, scope, due, AT, changed=True, fresh=True)

    def resume(self, lj: LoadedJourney, enrollment: PlannedEnrollment, scope: dict[str, Any]) -> Progress:
        """A stored waiting enrollment, where its row says it is.

        Rows written before ``step_started_at`` was stored (migration 0004) are read as that code
        wrote them: at a ``wait_for`` step, waiting inside it since ``next_at`` minus its timeout;
        at any other step, arriving there at ``next_at`` (the end of the wait before it)."""
        steps = lj.journey.steps
        index = step_graph(lj.journey).ids.get(enrollment.step_id or "", len(steps))
        started = enrollment.step_started_at
        assert enrollment.next_at is not None
        if index >= len(steps):
            return Progress(lj, enrollment, index, started or enrollment.next_at, AT, scope)
        step = steps[index]
        if started is None:
            if step.wait_for is not None:
                return Progress(lj, enrollment, index, enrollment.next_at - duration(step.wait_for.timeout),
                                WAIT_FOR, scope)
            return Progress(lj, enrollment, index, enrollment.next_at, AT, scope)
        if step.wait is not None and enrollment.next_at > started:
            return Progress(lj, enrollment, index, started, WAIT, scope, wait_end=enrollment.next_at)
        # At a wait step with no time ahead: arrived there (a held wait's moment had not come), so
        # the wait begins when the enrollment is taken at that moment.
        return Progress(lj, enrollment, index, started, WAIT_FOR if step.wait_for is not None else AT, scope)

    # -- when it acts next -----------------------------------------------------------------------

    def schedule(self, p: Progress, facts: CustomerFacts, events: list[CustomerEvent]) -> datetime | None:
        """When ``p`` next acts, if this run may take it there; None if not (it stays as it is)."""
        journey = p.lj.journey
        hit: CustomerEvent | None = None
        if p.index >= len(journey.steps) or p.mode == AT:
            at, kind = p.since, AT
        elif p.mode == WAIT:
            assert p.wait_end is not None
            at, kind = p.wait_end, WAIT
        else:
            wf = journey.steps[p.index].wait_for
            assert wf is not None
            deadline = p.since + duration(wf.timeout)
            if wf.event.startswith("webhook."):
                # Issue 19: a webhook step's outcome answers only the enrollment that made the call.
                e = p.enrollment
                events = [ev for ev in events if ev.data.get("journey") == journey.id
                          and ev.data.get("occurrence") == e.occurrence]
            elif wf.event in OWN_OUTCOMES:
                # An agent's outcome or a receipt that names its journey answers that journey's enrollment
                # only: two callbacks sharing a queue must not take each other's "reached".
                events = [ev for ev in events if answers(ev.data, journey.id, p.enrollment.occurrence)]
            hit = self._find_event(wf.event, wf.when, facts, p, events, min(deadline, self.now))
            at, kind = (hit.occurred_at, "hit") if hit is not None else (deadline, "timeout")
        if journey.goal is not None and p.mode != AT:
            # The goal ends a wait as soon as its event happens (on a tie, before the wait's own end).
            goal = self._find_event(journey.goal.event, journey.goal.when, facts, p, events, min(at, self.now))
            if goal is not None:
                at, kind, hit = goal.occurred_at, "goal", goal
        p.wake_at, p.wake_kind, p.hit = at, kind, hit
        if at <= self.now:
            return at
        ahead = self.look.of(journey.id)
        if at <= self.horizon and not ahead.goal and kind in (AT, WAIT) and (
                kind == WAIT or p.index >= len(journey.steps) or p.index not in ahead.held):
            return at
        return None

    def settle(self, p: Progress, facts: CustomerFacts, events: list[CustomerEvent]) -> datetime | None:
        """``schedule``, and when the run may not take ``p`` further, leave it waiting in the store."""
        at = self.schedule(p, facts, events)
        if at is None:
            e = p.enrollment
            step = p.lj.journey.steps[p.index]
            e.state = "waiting"
            e.step_id = step.id
            e.step_started_at = p.since
            if p.mode == WAIT:
                e.next_at = p.wait_end
            elif p.mode == WAIT_FOR:
                assert step.wait_for is not None
                e.next_at = p.since + duration(step.wait_for.timeout)
            else:
                e.next_at = p.since
        return at

    # -- acting ------------------------------------------------------------------------------------

    def advance(self, p: Progress, facts: CustomerFacts, events: list[CustomerEvent]) -> datetime | None:
        """Act at ``p.wake_at``: take every step possible at that moment. Returns the moment it acts
        next when the run may take it there, None when it ended or was left waiting."""
        p.changed = True
        e = p.enrollment
        journey = p.lj.journey
        graph = step_graph(journey)
        t = p.wake_at
        assert t is not None
        index = p.index
        kind = p.wake_kind
        if kind == "goal":
            self._finish(e, "exited", t, "goal")
            return None
        if kind != AT:
            successors = graph.successors[index]
            if kind == "hit":
                assert p.hit is not None
                p.scope = {**p.scope, **event_fact(p.hit.type, p.hit.occurred_at, p.hit.data)}
                e.scope_event_id = p.hit.id
                target = successors[0]
            elif kind == "timeout":
                target = successors[1]
            else:
                target = successors[0]
            if target == "exit":
                self._finish(e, "done", t, "completed")
                return None
            index = graph.ids[target]
        return self._run(p, facts, events, index, t, graph)

    def _run(self, p: Progress, facts: CustomerFacts, events: list[CustomerEvent], index: int,
             t: datetime, graph: StepGraph) -> datetime | None:
        lj = p.lj
        journey = lj.journey
        ids = graph.ids
        successors_of = graph.successors
        held = self.look.of(journey.id).held
        enrollment = p.enrollment
        guard = 0
        while True:
            guard += 1
            if guard > 10 * len(journey.steps) + 10:  # a branch loop with no wait in it
                self._finish(enrollment, "exited", t, "loop")
                return None
            if index >= len(journey.steps):
                self._finish(enrollment, "done", t, "completed")
                return None
            step = journey.steps[index]
            enrollment.step_id = step.id
            if t > self.now and index in held:
                # Its moment has not come: a task or an update happens then, and a branch on a
                # fact events change is judged then.
                p.index, p.since, p.mode = index, t, AT
                return self.settle(p, facts, events)
            target: str
            if step.send is not None:
                urgent = bool(step.send.urgent) if step.send.urgent is not None else journey.urgent
                self.out.decisions.append(Decision(  # placeholder, decided by delivery rules later
                    Wanted(facts.id, journey.id, lj.version, step.id, enrollment.occurrence, journey.category,
                           urgent and journey.category == "service", journey.priority, step.send.listed,
                           step.send.template, t, enrollment.split_branch, enrollment.entry_rule,
                           # by_engagement: the list is the delivery setting's for the customer's level
                           engagement=engagement_facts(facts.fact) if step.send.by_engagement else None),
                    "wanted", "", [], t))
                target = successors_of[index][0]
            elif step.webhook is not None:
                # Issue 19 (webhook step): a touch on the ``webhook`` channel, sent by dispatch to the
                # target (its outcome comes back as the event webhook.<target>.succeeded|failed). A
                # call between systems: no consent, quiet hours or marketing cap (service, urgent).
                self.out.decisions.append(Decision(
                    Wanted(facts.id, journey.id, lj.version, step.id, enrollment.occurrence, "service", True,
                           journey.priority, [WEBHOOK_CHANNEL], step.webhook.template, t, enrollment.split_branch,
                           enrollment.entry_rule),
                    "wanted", "", [], t))
                target = successors_of[index][0]
            elif step.task is not None:
                task = step.task
                key = f"{facts.id}:{journey.id}:{step.id}:{enrollment.occurrence}"
                due, warn = self._times(task.queue, t, task.due_within)
                self.out.tasks.append(PlannedTask(
                    key, facts.id, journey.id, lj.version, step.id, enrollment.occurrence, task.queue,
                    PRIORITY[task.priority], task.script, facts.advisor_id if task.assign == "advisor" else None,
                    t, due, facts.timezone, enrollment.event_id, warn))
                target = successors_of[index][0]
            elif step.update is not None:
                name = step.update.field[len("customer.attributes.") :]
                facts.attributes[name] = step.update.value
                facts.fact[step.update.field] = step.update.value
                self.out.attribute_changes.setdefault(facts.id, {})[name] = step.update.value
                target = successors_of[index][0]
            elif step.wait is not None:
                target = successors_of[index][0]
                if target == "exit" and journey.goal is None:
                    # A wait with nothing after it and no goal to end it sooner: the journey is over.
                    self._finish(enrollment, "done", _wait_end(step, t, facts, p.scope), "completed")
                    return None
                p.index, p.since, p.mode = index, t, WAIT
                p.wait_end = _wait_end(step, t, facts, p.scope)
                return self.settle(p, facts, events)
            elif step.wait_for is not None:
                p.index, p.since, p.mode = index, t, WAIT_FOR
                return self.settle(p, facts, events)
            elif step.branch is not None:
                target = successors_of[index][-1]
                view = facts_at(facts, t)
                if p.scope:
                    view = {**view, **p.scope}
                now = epoch_seconds(t)
                for case_index, case in enumerate(step.branch.cases):
                    if rules.holds(case.when, view, now):
                        target = successors_of[index][case_index]
                        break
            elif step.split is not None:
                point = _split_point(facts.id, journey.id, enrollment.occurrence, step.id)
                chosen = None
                edge = 0.0
                for variant_index, variant in enumerate(step.split.variants):
                    edge += variant.percent
                    if point < edge:
                        chosen = variant_index
                        break
                if chosen is None:
                    enrollment.split_branch = "holdout"
                    self._finish(enrollment, "exited", t, "holdout")
                    return None
                enrollment.split_branch = step.split.variants[chosen].name
                target = successors_of[index][chosen]
            else:
                assert step.exit is not None
                self._finish(enrollment, "done", t, step.exit.reason)
                return None
            if target == "exit":
                self._finish(enrollment, "done", t, "completed")
                return None
            index = ids[target]

    def rejudge(self, p: Progress, facts: CustomerFacts, events: list[CustomerEvent], at: datetime) -> datetime | None:
        """``settle`` again a wait_for or a goal whose conditions read an attribute an update step changed at
        ``at``: the events from then on are judged with the new value, those before stand as judged."""
        p.judged_from = at
        return self.settle(p, facts, events)

    @staticmethod
    def _find_event(
        event_type: str, when: Condition | None, facts: CustomerFacts, p: Progress,
        events: list[CustomerEvent], until: datetime,
    ) -> CustomerEvent | None:
        """The first of ``events`` of the type in (``p.since``, until] that meets ``when``, and is not about
        another policy or claim than the enrollment (``about_another``), among those not judged for it
        already: acted on by an earlier run (for a stored enrollment), or before ``p.judged_from``."""
        after, scope, stored, judged = p.since, p.scope, not p.fresh, p.judged_from
        for ev in events:
            if ev.type != event_type or not (after < ev.occurred_at <= until) or about_another(scope, ev.data):
                continue
            if (stored and ev.processed) or (judged is not None and ev.occurred_at < judged):
                continue
            if when is None or rules.holds(
                    when, {**facts_at(facts, ev.occurred_at), **scope, **event_fact(ev.type, ev.occurred_at, ev.data)},
                    epoch_seconds(ev.occurred_at)):
                return ev
        return None

    @staticmethod
    def _finish(enrollment: PlannedEnrollment, state: str, at: datetime, reason: str) -> None:
        enrollment.state = state
        enrollment.next_at = None
        enrollment.step_started_at = None
        enrollment.exited_at = at
        enrollment.exit_reason = reason
