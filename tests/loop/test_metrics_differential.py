"""Differential test of the §8 figures by tier: ``compute_metrics`` against counts written here from the rows.

Hypothesis draws small books (customers whose tier changed around the period, touches of every status
with receipts, repeated replies and clicks, tasks in and out of their SLA with follow-ups, NPS and CSAT
answers with several by one customer, passives, 0 and 10) with moments at the edges of a period of local
days in Asia/Shanghai and of the UTC days around it. The expected figures follow the definitions in
``engine.loop.metrics`` one row at a time, in Python; the report must give the same, group by group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.loop.metrics import compute_metrics
from engine.loop.service_metrics import ACTED_TASK_CODES, RESOLVING_CODES
from engine.loop.tables import customer_t, event_t, outcome_t, survey_t, task_t, tier_change_t, touch_t
from store.db import get_engine
from store.models import AgentTask, Customer, Event, Outcome, SurveyAnswer, TierChange, Touch
from tests.db_support import module_sqlite_book

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, tzinfo=SHANGHAI).astimezone(UTC)
END = datetime(2026, 12, 1, tzinfo=SHANGHAI).astimezone(UTC)
NOW = END + timedelta(days=2)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
# The edges: each end of the local period, a second either side, and the UTC midnights beside them.
MOMENTS = st.sampled_from([
    START - SECOND, START, START + SECOND, START + timedelta(hours=8), START + timedelta(days=14),
    END - SECOND, END, END + timedelta(hours=8) - SECOND,
])
TIER_NAMES = st.sampled_from(["diamond", "gold", "silver", None])
CODES = st.sampled_from(["reached", "resolved", "no_answer", "call_back", "wrong_number"])


@dataclass(frozen=True)
class Change:
    at: datetime
    from_tier: str | None
    to_tier: str


@dataclass(frozen=True)
class Sent:
    customer: int
    status: str
    planned_for: datetime
    outcomes: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    customer: int
    created_at: datetime
    due_hours: int
    status: str
    done_hours: int
    code: str
    parent: int | None  # index of an earlier task


@dataclass(frozen=True)
class Answer:
    customer: int
    kind: str
    score: int
    at: datetime


@dataclass(frozen=True)
class Filed:
    """A complaint or a survey answer (an event), and the tasks that answer it: (status, hours after it)."""

    customer: int
    kind: str  # complaint.filed | survey.answered
    at: datetime
    answers: tuple[tuple[str, int, str], ...]  # status, hours from the event to done, outcome code


@dataclass(frozen=True)
class Drawn:
    tiers: list[str | None]
    changes: list[list[Change]]
    touches: list[Sent]
    tasks: list[Task]
    answers: list[Answer]
    filed: list[Filed]


@st.composite
def books(draw: st.DrawFn) -> Drawn:
    n = draw(st.integers(1, 4))
    customer = st.integers(0, n - 1)
    change = st.builds(Change, MOMENTS, TIER_NAMES, st.sampled_from(["diamond", "gold", "silver"]))
    touch = st.builds(Sent, customer, st.sampled_from(["planned", "sent", "delivered", "failed", "cancelled",
                                                      "dropped"]),
                      MOMENTS, st.lists(st.sampled_from(["delivered", "failed", "replied", "clicked", "opted_out"]),
                                        max_size=3).map(tuple))
    tasks = draw(st.lists(st.builds(Task, customer, MOMENTS, st.sampled_from([-1, 2, 48]),
                                    st.sampled_from(["open", "claimed", "done", "cancelled"]),
                                    st.sampled_from([1, 2, 72]), CODES, st.none()), max_size=5))
    # A follow-up names an earlier task as its parent.
    tasks = [t if i == 0 or not draw(st.booleans()) else Task(**{**t.__dict__, "parent": draw(st.integers(0, i - 1))})
             for i, t in enumerate(tasks)]
    nps = st.builds(Answer, customer, st.just("nps"), st.sampled_from([0, 6, 7, 8, 9, 10]), MOMENTS)
    csat = st.builds(Answer, customer, st.just("csat"), st.integers(1, 5), MOMENTS)
    answer = st.tuples(st.sampled_from(["done", "open", "cancelled"]), st.sampled_from([6, 24, 7, 30]), CODES)
    filed = st.builds(Filed, customer, st.sampled_from(["complaint.filed", "survey.answered"]), MOMENTS,
                      st.one_of(st.lists(answer, min_size=1, max_size=2), st.just([])).map(tuple))
    return Drawn(
        filed=draw(st.lists(filed, max_size=4)),
        tiers=draw(st.lists(TIER_NAMES, min_size=n, max_size=n)),
        changes=draw(st.lists(st.lists(change, max_size=2), min_size=n, max_size=n)),
        touches=draw(st.lists(touch, max_size=6)),
        tasks=tasks,
        answers=draw(st.lists(st.one_of(nps, csat), max_size=6)),
    )


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from module_sqlite_book(tmp_path_factory, "differential")


def _rows(model: Any) -> dict[str, Any]:
    return dict(model.model_dump())


def _write(url: str, book: Drawn) -> None:
    with get_engine(url).begin() as conn:
        for t in (outcome_t, survey_t, task_t, event_t, touch_t, tier_change_t, customer_t):
            conn.execute(sa.delete(t))
        conn.execute(sa.insert(customer_t), [
            _rows(Customer(id=i + 1, external_id=f"C{i}", name=f"C{i}", tier=tier, branch="SH", created_at=CREATED,
                           updated_at=CREATED))
            for i, tier in enumerate(book.tiers)])
        changes = [_rows(TierChange(customer_id=i + 1, from_tier=c.from_tier, to_tier=c.to_tier, score=50,
                                    changed_at=c.at))
                   for i, cs in enumerate(book.changes) for c in cs]
        if changes:
            conn.execute(sa.insert(tier_change_t), changes)
        if book.touches:
            conn.execute(sa.insert(touch_t), [
                _rows(Touch(id=j + 1, key=f"t{j}", customer_id=s.customer + 1, journey_id="j", journey_version="v1",
                            step_id="s", occurrence=f"o{j}", category="service", channel="sms", template="t",
                            planned_for=s.planned_for, due_at=s.planned_for, status=s.status,
                            created_at=s.planned_for))
                for j, s in enumerate(book.touches)])
            outcomes = [_rows(Outcome(touch_id=j + 1, customer_id=s.customer + 1, kind=kind, occurred_at=s.planned_for))
                        for j, s in enumerate(book.touches) for kind in s.outcomes]
            if outcomes:
                conn.execute(sa.insert(outcome_t), outcomes)
        if book.tasks:
            conn.execute(sa.insert(task_t), [
                _rows(AgentTask(
                    id=j + 1, key=f"k{j}", customer_id=k.customer + 1, journey_id="j", journey_version="v1",
                    step_id="call", occurrence=f"k{j}", queue="callbacks", created_at=k.created_at,
                    due_at=k.created_at + timedelta(hours=k.due_hours), status=k.status,
                    completed_at=k.created_at + timedelta(hours=k.done_hours) if k.status == "done" else None,
                    outcome_code=k.code if k.status == "done" else None,
                    parent_task_id=None if k.parent is None else k.parent + 1))
                for j, k in enumerate(book.tasks)])
        if book.filed:
            conn.execute(sa.insert(event_t), [
                _rows(Event(id=j + 1, external_id=f"e{j}", type=f.kind, customer_id=f.customer + 1, data={},
                            occurred_at=f.at, received_at=f.at))
                for j, f in enumerate(book.filed)])
            # Created long before the period, so that they count as answers here and not among its tasks.
            answering = [
                _rows(AgentTask(
                    key=f"e{j}-{n}", customer_id=f.customer + 1, journey_id="care", journey_version="v1",
                    step_id="call", occurrence=f"e{j}", event_id=j + 1, queue="callbacks", created_at=CREATED,
                    due_at=f.at + timedelta(hours=24), status=status,
                    completed_at=f.at + timedelta(hours=hours) if status == "done" else None,
                    outcome_code=code if status == "done" else None))
                for j, f in enumerate(book.filed) for n, (status, hours, code) in enumerate(f.answers)]
            if answering:
                conn.execute(sa.insert(task_t), answering)
        if book.answers:
            conn.execute(sa.insert(survey_t), [
                _rows(SurveyAnswer(customer_id=a.customer + 1, kind=a.kind, score=a.score, answered_at=a.at))
                for a in book.answers])


def _tier_at_start(book: Drawn, i: int) -> str:
    # Changes in the order they were written (their ids), as the history orders equal moments.
    ordered = sorted(enumerate(book.changes[i]), key=lambda p: (p[1].at, p[0]))
    before = [c for _, c in ordered if c.at <= START]
    if before:
        return before[-1].to_tier
    after = [c for _, c in ordered if c.at > START]
    if after:
        return after[0].from_tier or "none"
    return book.tiers[i] or "none"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _expected(book: Drawn) -> dict[str, dict[str, Any]]:
    tier = [_tier_at_start(book, i) for i in range(len(book.tiers))]
    groups: dict[str, dict[str, int]] = {}

    def add(customer: int, **counts: int) -> None:
        group = groups.setdefault(tier[customer], {})
        for key, n in counts.items():
            group[key] = group.get(key, 0) + n

    def within(moment: datetime) -> bool:
        return START <= moment < END

    for s in book.touches:
        if not within(s.planned_for):
            continue
        acted = any(kind in ("replied", "clicked") for kind in s.outcomes)
        add(s.customer, planned=s.status != "cancelled", delivered=s.status == "delivered",
            failed=s.status == "failed", handed=s.status in ("sent", "delivered", "failed"), acted=acted,
            reached=s.status == "delivered" or acted)
    parents = {k.parent for k in book.tasks if k.parent is not None}
    for j, k in enumerate(book.tasks):
        if not within(k.created_at) or k.status == "cancelled":
            continue
        done = k.status == "done"
        root = done and k.parent is None
        add(k.customer, tasks=1, judged=done or k.created_at + timedelta(hours=k.due_hours) < NOW,
            met=done and k.done_hours <= k.due_hours, fcr_cases=root,
            fcr_ok=root and k.code in RESOLVING_CODES and j not in parents,
            acted=done and k.code in ACTED_TASK_CODES, reached=done)
    for a in book.answers:
        if within(a.at):
            nps = a.kind == "nps"
            add(a.customer, nps_answers=nps, promoters=nps and a.score >= 9, detractors=nps and a.score <= 6,
                csat_answers=not nps, satisfied=not nps and a.score >= 4)
    for f in book.filed:
        if not within(f.at):
            continue
        done = sorted(hours for status, hours, _ in f.answers if status == "done")
        resolved = sorted(hours for status, hours, code in f.answers if status == "done" and code == "resolved")
        limit = 24 if f.kind == "complaint.filed" else 6
        if f.kind == "survey.answered" and not f.answers:
            continue  # no callback was asked for: not a negative-feedback callback
        prefix = "c_" if f.kind == "complaint.filed" else "n_"
        add(f.customer, **{
            f"{prefix}n": 1, f"{prefix}answered": bool(done), f"{prefix}hours": done[0] if done else 0,
            f"{prefix}judged": bool(done) or NOW - f.at > timedelta(hours=limit),
            f"{prefix}met": bool(done) and done[0] <= limit,
            f"{prefix}closed": bool(resolved), f"{prefix}closure": resolved[0] if resolved else 0})
    figures: dict[str, dict[str, Any]] = {}
    for name, g in groups.items():
        n = g.get("nps_answers", 0)
        figures[name] = {
            "planned": g.get("planned", 0), "delivered": g.get("delivered", 0), "failed": g.get("failed", 0),
            "reach_rate": _share(g.get("delivered", 0), g.get("planned", 0)),
            "delivery_rate": _share(g.get("delivered", 0), g.get("handed", 0)),
            "tasks": g.get("tasks", 0), "sla_judged": g.get("judged", 0), "sla_met": g.get("met", 0),
            "sla_compliance": _share(g.get("met", 0), g.get("judged", 0)),
            "fcr_cases": g.get("fcr_cases", 0),
            "first_contact_resolution": _share(g.get("fcr_ok", 0), g.get("fcr_cases", 0)),
            "acted_on": g.get("acted", 0), "reached": g.get("reached", 0),
            "precision": _share(g.get("acted", 0), g.get("reached", 0)),
            "nps_answers": n,
            "nps": round((g.get("promoters", 0) - g.get("detractors", 0)) * 100 / n, 2) if n else None,
            "csat_answers": g.get("csat_answers", 0),
            "csat": _share(g.get("satisfied", 0), g.get("csat_answers", 0)),
            "complaints": g.get("c_n", 0),
            "complaint_response_hours": _mean(g.get("c_hours", 0), g.get("c_answered", 0)),
            "complaint_within_24h": _share(g.get("c_met", 0), g.get("c_judged", 0)),
            "closure_cycle_hours": _mean(g.get("c_closure", 0), g.get("c_closed", 0)),
            "negative_callbacks": g.get("n_n", 0),
            "negative_callback_hours": _mean(g.get("n_hours", 0), g.get("n_answered", 0)),
            "negative_callback_within_6h": _share(g.get("n_met", 0), g.get("n_judged", 0)),
        }
    return figures


def _mean(total_hours: int, n: int) -> float | None:
    return round(total_hours / n, 2) if n else None


COUNTS = {"planned", "delivered", "failed", "tasks", "sla_judged", "sla_met", "fcr_cases", "acted_on", "reached",
          "nps_answers", "csat_answers", "complaints", "negative_callbacks"}


def _as_found(values: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    # A group the report does not list has nothing to count; one it lists must say 0 itself, not None.
    return {k: values.get(k, 0 if k in COUNTS else None) for k in keys}


@settings(max_examples=100, deadline=None)
@given(book=books())
def test_figures_by_tier_are_the_counts_of_the_rows(url: str, book: Drawn) -> None:
    _write(url, book)
    report = compute_metrics(START, END, "tier", now=NOW, url=url, zone="Asia/Shanghai")
    expected = _expected(book)
    keys = set(next(iter(expected.values()))) if expected else COUNTS
    for name in set(expected) | set(report.groups):
        if name not in expected:
            assert _as_found(report.groups[name], keys) == _as_found({}, keys), name
            continue
        assert _as_found(report.groups.get(name, {}), keys) == expected[name], name
