"""Random splits and holdouts measured: per variant reach, reply and goal rates, compared with a baseline.

The baseline is the holdout when the split has one and the journey has a goal (the lift of sending
at all, judged by the goal), else the split's first variant (judged by replies). Each other group
is compared with it per metric by the two-proportion z-test: the difference of the rates with a
95% confidence interval (unpooled standard error) and a two-sided p-value (pooled standard error
under "no difference"), from ``scipy.stats``.

A comparison is judged only with enough data: at least ``MIN_GROUP`` enrollments on each side
and ``MIN_EVENTS`` successes and failures overall (below that the normal approximation the
test rests on does not hold, and a tiny sample's p-value would mislead more than inform).

Rows: enrollments of the journey that entered in ``[start, end)`` and were given a variant
(``split_branch``). Reached = had a delivered touch; replied = a touch with a ``replied``
outcome; goal = left the journey on its goal event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from scipy.stats import norm
from sqlmodel import Session

from engine.language.journey_model import Journey
from engine.loop.metric_sql import whole
from engine.loop.service_metrics import GOAL_EXIT_REASONS, HOLDOUT
from engine.loop.sqlfn import count_where
from engine.loop.tables import enrollment_t, outcome_t, touch_t
from store.models import WEBHOOK_CHANNEL

METRICS = ("reach", "reply", "goal")
MIN_GROUP = 30
MIN_EVENTS = 5
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    metric: str
    difference: float | None  # group rate − baseline rate
    low: float | None  # 95% confidence interval of the difference
    high: float | None
    p_value: float | None
    enough: bool


@dataclass
class Group:
    name: str
    holdout: bool
    entered: int = 0
    reached: int = 0
    replied: int = 0
    goal: int = 0
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    def count(self, metric: str) -> int:
        return {"reach": self.reached, "reply": self.replied, "goal": self.goal}[metric]

    def rate(self, metric: str) -> float | None:
        return self.count(metric) / self.entered if self.entered else None


@dataclass(frozen=True)
class Verdict:
    kind: str  # better | worse | no_difference | not_enough
    group: str
    baseline: str
    metric: str
    p_value: float | None


@dataclass
class SplitResult:
    step: str
    baseline: str
    groups: list[Group]
    verdicts: list[Verdict]


def compare(n0: int, x0: int, n1: int, x1: int, metric: str = "goal") -> Comparison:
    """Group 1 (``x1`` of ``n1``) against baseline 0 (``x0`` of ``n0``)."""
    if n0 == 0 or n1 == 0:
        return Comparison(metric, None, None, None, None, False)
    p0, p1 = x0 / n0, x1 / n1
    diff = p1 - p0
    z_crit = float(norm.ppf(1 - ALPHA / 2))
    se = math.sqrt(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1)
    pooled = (x0 + x1) / (n0 + n1)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n0 + 1 / n1))
    # Both sides all-yes or all-no: nothing separates them, whatever the sizes.
    p_value = 1.0 if se0 == 0 else float(2 * norm.sf(abs(diff) / se0))
    successes, failures = x0 + x1, (n0 - x0) + (n1 - x1)
    enough = min(n0, n1) >= MIN_GROUP and successes >= MIN_EVENTS and failures >= MIN_EVENTS
    return Comparison(metric, diff, diff - z_crit * se, diff + z_crit * se, p_value, enough)


def verdict(group: Group, baseline: Group, metric: str) -> Verdict:
    c = group.comparisons[metric]
    if not c.enough or c.p_value is None or c.difference is None:
        return Verdict("not_enough", group.name, baseline.name, metric, c.p_value)
    if c.p_value >= ALPHA:
        return Verdict("no_difference", group.name, baseline.name, metric, c.p_value)
    return Verdict("better" if c.difference > 0 else "worse", group.name, baseline.name, metric, c.p_value)


def _group_counts(session: Session, journey_id: str, start: datetime, end: datetime) -> dict[str, tuple[int, ...]]:
    e, t, o = enrollment_t, touch_t, outcome_t
    # An enrollment's touches share its customer, journey and occurrence: the planner writes touches
    # in bulk and leaves ``touch.enrollment_id`` empty, so the id alone would find none of them.
    own = (t.c.customer_id == e.c.customer_id, t.c.journey_id == e.c.journey_id, t.c.occurrence == e.c.occurrence,
           t.c.channel != WEBHOOK_CHANNEL)
    reached = sa.exists().where(*own, t.c.status == "delivered")
    replied = sa.exists().select_from(t.join(o, o.c.touch_id == t.c.id)).where(*own, o.c.kind == "replied")
    rows = session.execute(
        sa.select(e.c.split_branch, sa.func.count(), count_where(reached), count_where(replied),
                  count_where(e.c.exit_reason.in_(GOAL_EXIT_REASONS)))
        # entered_at IS NOT NULL is ix_enrollment_journey_entered's condition, which SQLite does not infer (0016).
        .where(e.c.journey_id == journey_id, e.c.entered_at.is_not(None), e.c.entered_at >= start,
               e.c.entered_at < end, e.c.split_branch.is_not(None))
        .group_by(e.c.split_branch)
    ).all()
    return {name: (whole(n), whole(r), whole(p), whole(g)) for name, n, r, p, g in rows}


def split_results(session: Session, journey: Journey, start: datetime, end: datetime) -> list[SplitResult]:
    """One result per split step of ``journey`` (one grouped query for the journey whatever the number of splits)."""
    splits = [s for s in journey.steps if s.split is not None]
    if not splits:
        return []
    counts = _group_counts(session, journey.id, start, end)
    out: list[SplitResult] = []
    for step in splits:
        assert step.split is not None
        groups = [Group(v.name, False) for v in step.split.variants]
        if step.split.holdout:
            groups.append(Group(HOLDOUT, True))
        for g in groups:
            g.entered, g.reached, g.replied, g.goal = counts.get(g.name, (0, 0, 0, 0))
        # With a goal, the holdout is the baseline (the lift of sending at all). Without one, replies are all
        # there is to judge by, and a holdout is sent nothing, so the variants are compared among themselves.
        judged = "goal" if journey.goal is not None else "reply"
        baseline = groups[-1] if step.split.holdout and judged == "goal" else groups[0]
        verdicts = []
        for g in groups:
            if g is baseline:
                continue
            g.comparisons = {m: compare(baseline.entered, baseline.count(m), g.entered, g.count(m), m)
                             for m in METRICS}
            if not (g.holdout and judged == "reply"):
                verdicts.append(verdict(g, baseline, judged))
        out.append(SplitResult(step.id, baseline.name, groups, verdicts))
    return out
