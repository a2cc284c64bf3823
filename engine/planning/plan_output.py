"""What a planner run produces: the planned rows of one chunk and the counts of a whole run.

Kept apart from the planner so that every stage of a run (step machine, candidates, writer,
worker processes) and every reader of its output (explain, simulate, the event loop, the CLI)
can share these types without importing the planner itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from engine.planning.delivery_rules import Decision, TouchChange


@dataclass(slots=True)
class PlannedTask:
    key: str
    customer_id: int
    journey_id: str
    journey_version: str
    step_id: str
    occurrence: str
    queue: str
    priority: int
    script: str | None
    assignee_id: int | None
    planned_for: datetime
    due_at: datetime
    timezone: str
    event_id: int | None = None  # the event its enrollment answers (``PlannedEnrollment.event_id``)
    warn_at: datetime | None = None  # when the desk warns before the breach, on the queue's clock like due_at


@dataclass(slots=True)
class PlannedEnrollment:
    customer_id: int
    journey_id: str
    journey_version: str
    occurrence: str
    step_id: str | None
    state: str
    next_at: datetime | None
    split_branch: str | None
    entered_at: datetime
    exited_at: datetime | None
    exit_reason: str | None
    entry_rule: str | None
    existing_id: int | None = None
    previous_next_at: datetime | None = None
    # When it arrived at ``step_id`` (began a wait or wait_for there, or reached a step that
    # waits for its moment); None on rows written before this was stored (migration 0004).
    step_started_at: datetime | None = None
    # The event a wait_for ended on, whose ``event.*`` the steps after it read.
    scope_event_id: int | None = None
    # The event an event-entry enrollment answers: the key the metrics join on (migration 0005).
    event_id: int | None = None


@dataclass
class ChunkOutput:
    decisions: list[Decision] = field(default_factory=list)
    changes: list[TouchChange] = field(default_factory=list)
    tasks: list[PlannedTask] = field(default_factory=list)
    enrollments: list[PlannedEnrollment] = field(default_factory=list)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[int] = field(default_factory=list)
    timezones: dict[int, str] = field(default_factory=dict)
    external_ids: dict[int, str] = field(default_factory=dict)
    audience: dict[tuple[int, str], bool] = field(default_factory=dict)
    # What update steps set, per customer in the order they ran; ``updates`` gets each
    # customer's whole attributes with these applied.
    attribute_changes: dict[int, dict[str, Any]] = field(default_factory=dict)


Sink = Callable[[ChunkOutput], None]


@dataclass
class PlanResult:
    start: datetime
    end: datetime
    dry_run: bool
    journeys: list[str] = field(default_factory=list)
    by_journey_channel: Counter[tuple[str, str]] = field(default_factory=Counter)
    tasks_by_queue: Counter[str] = field(default_factory=Counter)
    planned: int = 0
    moved: int = 0
    held: int = 0  # touches a rule kept back to a later time (quiet hours)
    dropped: Counter[str] = field(default_factory=Counter)
    preempted: int = 0  # touches planned by an earlier run, dropped for a touch of higher priority
    restored: int = 0  # touches dropped by an earlier run that the cap now lets through
    tasks: int = 0
    touches_written: int = 0  # planned touches inserted (a re-run inserts none)
    dropped_written: int = 0  # dropped touches recorded for explain
    tasks_written: int = 0
    enrollments_written: int = 0
    enrollments_advanced: int = 0
    touches_changed: int = 0  # stored touches whose status the cap changed (pre-empted or let back in)
    events_processed: int = 0
    problems: list[str] = field(default_factory=list)
    # "customer id N: <error>" of each customer whose planning failed and who was left out of the run
    # (``ChunkPlanner.plan_chunk``); a Counter so that worker processes' and slices' results add up.
    failed_customers: Counter[str] = field(default_factory=Counter)
    workers: int = 1  # processes that planned the run

    def add(self, out: ChunkOutput) -> None:
        for d in out.decisions:
            if d.planned:
                self.planned += 1
                self.by_journey_channel[(d.wanted.journey_id, d.channel)] += 1
                if d.moved_by:
                    self.moved += 1
                    self.held += 1
            else:
                self.dropped[d.dropped_by or "?"] += 1
        for c in out.changes:
            if c.status == "planned":
                self.restored += 1
            elif c.old_status == "planned":
                self.preempted += 1
        for t in out.tasks:
            self.tasks += 1
            self.tasks_by_queue[t.queue] += 1
        self.events_processed += len(out.events)

    def merge(self, other: PlanResult) -> None:
        """Add what another part of the same run did (a chunk planned in a worker process):
        every counter and count, so a count added to the class is merged too."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, int) and not isinstance(mine, bool) and f.name != "workers":
                setattr(self, f.name, mine + theirs)
