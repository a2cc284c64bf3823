"""The step machine: runs one enrollment through its journey's steps.

From the moment it enters (or the moment its wait ends) an enrollment goes step by step:
sends become wanted touches (delivery rules decide them later, for the whole chunk), tasks
and attribute updates are planned, branches and splits choose the next step, and a wait or
a wait for an event either passes within the horizon or leaves the enrollment waiting. Time
is the planned moment throughout, never the wall clock, so a plan is reproducible. It reads
no database: candidates, facts and the customer's events are handed to it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.language.conditions import epoch_seconds
from engine.language.durations import parse_duration
from engine.language.journey_model import Condition, Journey
from engine.language.validation import LoadedJourney
from engine.planning import rules
from engine.planning.delivery_rules import Decision, Wanted
from engine.planning.facts import CustomerFacts, event_fact
from engine.planning.journeys_in_force import entry_rule
from engine.planning.plan_output import ChunkOutput, PlannedEnrollment, PlannedTask

PRIORITY = {"high": 1, "normal": 2, "low": 3}


@dataclass
class CustomerEvent:
    """One of a customer's events that a goal or a ``wait_for`` step may be waiting on."""

    id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


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


def _split_point(customer_id: int, journey_id: str, occurrence: str, step_id: str) -> float:
    """A stable number in [0, 100) per customer, journey, occurrence and step: the same
    customer lands in the same variant however often the plan runs."""
    digest = hashlib.sha1(f"{customer_id}:{journey_id}:{occurrence}:{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


class StepMachine:
    """Runs one enrollment's steps from a moment until it waits past the horizon or ends."""

    def __init__(self, horizon: datetime, out: ChunkOutput) -> None:
        self.horizon = horizon
        self.out = out

    def run(
        self,
        lj: LoadedJourney,
        facts: CustomerFacts,
        scope: dict[str, Any],
        events: list[CustomerEvent],
        enrollment: PlannedEnrollment,
        index: int,
        t: datetime,
        resuming: bool,
    ) -> None:
        journey = lj.journey
        graph = step_graph(journey)
        ids = graph.ids
        successors_of = graph.successors
        # The customer's own fact dict serves as is when there is no scope to add: it is only
        # written through by update steps (which write it anyway), and a matched event's
        # fields go into a copy below.
        fact = {**facts.fact, **scope} if scope else facts.fact
        guard = 0
        while True:
            guard += 1
            if guard > 10 * len(journey.steps) + 10:  # a branch loop with no wait in it
                self._finish(enrollment, "exited", t, "loop")
                return
            if resuming and journey.goal is not None and self._goal_reached(journey, fact, events, enrollment, t):
                return
            if index >= len(journey.steps):
                self._finish(enrollment, "done", t, "completed")
                return
            step = journey.steps[index]
            enrollment.step_id = step.id
            target: str
            if step.send is not None:
                urgent = bool(step.send.urgent) if step.send.urgent is not None else journey.urgent
                self.out.decisions.append(Decision(  # placeholder, decided by delivery rules later
                    Wanted(facts.id, journey.id, lj.version, step.id, enrollment.occurrence, journey.category,
                           urgent and journey.category == "service", journey.priority, list(step.send.channels),
                           step.send.template, t, enrollment.split_branch, enrollment.entry_rule),
                    "wanted", "", [], t))
                target = successors_of[index][0]
            elif step.task is not None:
                task = step.task
                key = f"{facts.id}:{journey.id}:{step.id}:{enrollment.occurrence}"
                self.out.tasks.append(PlannedTask(
                    key, facts.id, journey.id, lj.version, step.id, enrollment.occurrence, task.queue,
                    PRIORITY[task.priority], task.script, facts.advisor_id if task.assign == "advisor" else None,
                    t, t + duration(task.due_within), facts.timezone))
                target = successors_of[index][0]
            elif step.update is not None:
                name = step.update.field[len("customer.attributes.") :]
                facts.attributes[name] = step.update.value
                fact[step.update.field] = step.update.value
                facts.fact[step.update.field] = step.update.value
                self.out.attribute_changes.setdefault(facts.id, {})[name] = step.update.value
                target = successors_of[index][0]
            elif step.wait is not None:
                until = t + duration(step.wait)
                target = successors_of[index][0]
                if target == "exit":  # a wait with nothing after it: the journey is over
                    self._finish(enrollment, "done", until, "completed")
                    return
                if until > self.horizon:
                    self._wait(enrollment, target, until)
                    return
                t = until
                resuming = True
            elif step.wait_for is not None:
                wf = step.wait_for
                timeout = duration(wf.timeout)
                began = enrollment.next_at - timeout if (resuming and enrollment.next_at) else t
                deadline = began + timeout
                hit = self._find_event(wf.event, wf.when, fact, events, began, min(deadline, self.horizon))
                successors = successors_of[index]
                if hit is not None:
                    t = hit.occurred_at
                    fact = {**fact, **event_fact(hit.type, hit.occurred_at, hit.data)}
                    target = successors[0]
                elif deadline <= self.horizon:
                    t = deadline
                    target = successors[1]
                else:
                    self._wait(enrollment, step.id, deadline)
                    return
                resuming = True
            elif step.branch is not None:
                target = successors_of[index][-1]
                now = epoch_seconds(t)
                for case_index, case in enumerate(step.branch.cases):
                    if rules.holds(case.when, fact, now):
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
                    return
                enrollment.split_branch = step.split.variants[chosen].name
                target = successors_of[index][chosen]
            else:
                assert step.exit is not None
                self._finish(enrollment, "done", t, step.exit.reason)
                return
            if target == "exit":
                self._finish(enrollment, "done", t, "completed")
                return
            index = ids[target]

    def _goal_reached(
        self, journey: Journey, fact: dict[str, Any], events: list[CustomerEvent], enrollment: PlannedEnrollment,
        t: datetime,
    ) -> bool:
        assert journey.goal is not None
        hit = self._find_event(journey.goal.event, journey.goal.when, fact, events, enrollment.entered_at, t)
        if hit is None:
            return False
        self._finish(enrollment, "exited", hit.occurred_at, "goal")
        return True

    @staticmethod
    def _find_event(
        event_type: str, when: Condition | None, fact: dict[str, Any], events: list[CustomerEvent],
        after: datetime, until: datetime,
    ) -> CustomerEvent | None:
        for ev in events:
            if ev.type != event_type or not (after < ev.occurred_at <= until):
                continue
            if when is None or rules.holds(when, {**fact, **event_fact(ev.type, ev.occurred_at, ev.data)},
                                           epoch_seconds(ev.occurred_at)):
                return ev
        return None

    @staticmethod
    def _wait(enrollment: PlannedEnrollment, step_id: str | None, until: datetime) -> None:
        enrollment.state = "waiting"
        enrollment.step_id = step_id
        enrollment.next_at = until

    @staticmethod
    def _finish(enrollment: PlannedEnrollment, state: str, at: datetime, reason: str) -> None:
        enrollment.state = state
        enrollment.next_at = None
        enrollment.exited_at = at
        enrollment.exit_reason = reason
