"""The planner's contract (``engine.planning.planner``): one result however time is sliced.

Hypothesis draws a small book, an event stream, the moments the runs stand at and which of them
are previews (dry runs), and a few journeys of its own next to every shipped one. Two copies of
the book are planned:

- *one window*: every event stored as it was reported, then a single dry run over (A, C];
- *sliced*: written runs at the drawn moments, each event emitted between them at the moment it
  happened through the product's event path (``engine.loop.events.emit_event``, which acts on it
  at once), previews in between; either plain runs (``plan``) or what ``journeys run`` does at its
  5-minute ticks (``plan_ahead``: the runs plan ahead through every customer's next local day).

The dry run must plan exactly what the sliced runs wrote: every touch (status, channel, due time,
drop reason), agent task, enrollment state and exit, and attribute. A difference fails, naming
the customer, journey and step. Bounded and derandomised (the suite's profile); on SQLite, and a
smaller variant on PostgreSQL.
"""

from __future__ import annotations

import itertools
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from engine.loop.events import emit_event, survey_answers
from engine.planning.planner import ChunkOutput, plan, plan_ahead, through_next_local_day
from store.clock import simulated_time
from store.db import get_engine
from store.migrate import upgrade
from store.models import AgentTask, Customer, Enrollment, Event, Policy, Touch
from tests.db_support import scratch_postgres_database

ROOT = Path(__file__).resolve().parents[2]
ZONES = ("Asia/Shanghai", "America/Los_Angeles", "Europe/London")
TIERS = ("diamond", "platinum", "gold", "silver", "potential")
FLAGS = ("flag_a", "flag_b")


# --- the book -------------------------------------------------------------------------------------

person = st.fixed_dictionaries({
    "tier": st.sampled_from(TIERS),
    "timezone": st.sampled_from(ZONES),
    # Mostly reachable: a touch with no channel to go out on takes no part in the cap's contest.
    "consent_sms": st.sampled_from([True, True, True, False]), "consent_wechat": st.booleans(),
    "consent_email": st.booleans(),
    "birthday": st.dates(min_value=date(1950, 1, 1), max_value=date(2004, 12, 31)),
    "preference": st.sampled_from(["travel", "health", "family"]),
    "line": st.sampled_from(["motor", "health", "life"]),
    "expiry_days": st.integers(min_value=28, max_value=45),  # after A: the renewal reminder fires in the window
    "due_days": st.sampled_from([None, None, 2, 4]),  # the attribute ``due`` (after A), which update steps move
})

EVENT_DATA: dict[str, Any] = {
    "complaint.filed": st.fixed_dictionaries({"category": st.just("service"), "severity": st.just("high")}),
    "complaint.resolved": st.just({}),
    "survey.answered": st.fixed_dictionaries({"survey": st.just("nps"), "nps": st.integers(0, 10)}),
    "app.login": st.just({"platform": "ios"}),
    "policy.renewed": st.just({}),  # the customer's policy, filled in below
    "task.completed": st.fixed_dictionaries({
        "queue": st.sampled_from(["gold_callback", "platinum_callback", "service_recovery", "renewal"]),
        "outcome": st.sampled_from(["no_answer", "reached"])}),
    "message.replied": st.fixed_dictionaries({"text": st.sampled_from(["1", "yes", "TD"])}),
    "churn.warning": st.fixed_dictionaries({"risk": st.sampled_from([0.3, 0.8])}),
}

event = st.tuples(
    st.integers(min_value=1, max_value=16 * 24 * 60),  # minutes after A (kept inside the window)
    st.integers(min_value=0, max_value=5),  # which customer (modulo the book)
    st.sampled_from(sorted(EVENT_DATA)),
).flatmap(lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.just(t[2]), EVENT_DATA[t[2]]))


# --- journeys of the test's own: waits, wait_fors with both exits, branches, splits, goals -------

CONDITIONS = [
    {"field": "customer.tier", "op": "in", "value": ["gold", "silver"]},
    {"field": "customer.logins_90d", "op": "ge", "value": 1},
    {"field": "customer.last_nps", "op": "le", "value": 6},
    {"field": "customer.attributes.flag_a", "op": "eq", "value": True},
    {"field": "customer.attributes.flag_b", "op": "eq", "value": True},
    {"field": "customer.age", "op": "ge", "value": 45},
]
WAIT_EVENTS = ["app.login", "complaint.resolved", "message.replied", "policy.renewed", "survey.answered"]
DURATIONS = ["30m", "3h", "20h", "1d", "2d", "3d"]
# Waits until a moment; the last runs until a date update steps set (``due``: a few days after the
# example's start, some customers have one to begin with).
UNTILS = ['{until: "10:00"}', '{until: next_working_day, at: "09:00"}',
          '{until: {anchor: customer.birthday, offset: -1d, at: "08:00"}}',
          '{until: {anchor: customer.attributes.due, at: "10:00"}}']
DUE_DAYS = [1, 2, 3, 5, 8]


@st.composite
def generated_journey(draw: st.DrawFn, n: int, around: date = date(2027, 3, 1)) -> str:
    category = draw(st.sampled_from(["service", "marketing", "marketing"]))
    # Templates that read no policy, claim or event: every entry kind generated may send them.
    template = "nps_survey" if category == "service" else "silver_weekly_push"
    entry_kind = draw(st.sampled_from(["schedule", "schedule", "event", "birthday", "due"]))
    lines = [f"id: gen-{n}", f"name: Generated {n}", f"category: {category}",
             f"priority: {draw(st.integers(0, 100))}"]
    if draw(st.booleans()):
        lines.append(f"audience: {{when: {_flow(draw(st.sampled_from(CONDITIONS)))}}}")
    if entry_kind == "schedule":
        hour = draw(st.integers(0, 23))
        days = draw(st.sampled_from(["*", "*", "MON,THU", "SAT,SUN"]))
        lines.append(f'entry: {{schedule: {{cron: "{draw(st.sampled_from([0, 30]))} {hour} * * {days}"}}}}')
    elif entry_kind == "due":  # a date update steps may move
        lines.append(f'entry: {{date: {{anchor: customer.attributes.due, offset: "-{draw(st.integers(0, 2))}d", '
                     f'at: "{draw(st.integers(0, 23)):02d}:00"'
                     + draw(st.sampled_from(["", ", on_non_working_day: next_working_day"])) + "}}")
    elif entry_kind == "event":
        lines.append(f"entry: {{event: {{type: {draw(st.sampled_from(WAIT_EVENTS))}}}}}")
    else:
        lines.append(f'entry: {{date: {{anchor: customer.birthday, offset: "-{draw(st.integers(0, 20))}d", '
                     f'at: "{draw(st.integers(0, 23)):02d}:00"}}}}')
    lines.append("reentry: {allowed: true" + (", after: 2d}" if draw(st.booleans()) else "}"))
    if draw(st.booleans()):
        lines.append(f"goal: {{event: {draw(st.sampled_from(WAIT_EVENTS))}{_when(draw)}}}")
    kinds = draw(st.lists(st.sampled_from(["send", "wait", "until", "wait_for", "branch", "split", "task", "update"]),
                          min_size=2, max_size=7))
    steps: list[str] = []
    count = len(kinds)
    for i, kind in enumerate(kinds):
        sid = f"s{i}"
        later = f"s{draw(st.integers(i + 1, count))}" if i + 1 < count else "next"
        later = "end" if later == f"s{count}" else later
        if kind == "send":
            steps.append(f"  - {{id: {sid}, send: {{channels: [wechat, sms], template: {template}}}}}")
        elif kind == "wait":
            steps.append(f"  - {{id: {sid}, wait: {draw(st.sampled_from(DURATIONS))}}}")
        elif kind == "until":
            steps.append(f"  - {{id: {sid}, wait: {draw(st.sampled_from(UNTILS))}}}")
        elif kind == "wait_for":
            steps.append(f"  - {{id: {sid}, wait_for: {{event: {draw(st.sampled_from(WAIT_EVENTS))}{_when(draw)}, "
                         f"timeout: {draw(st.sampled_from(DURATIONS))}, on_event: {later}, on_timeout: next}}}}")
        elif kind == "branch":
            steps.append(f"  - {{id: {sid}, branch: {{cases: [{{when: {_flow(draw(st.sampled_from(CONDITIONS)))}, "
                         f"goto: {later}}}], otherwise: next}}}}")
        elif kind == "split":
            steps.append(f"  - {{id: {sid}, split: {{variants: [{{name: a, percent: 45, goto: next}}, "
                         f"{{name: b, percent: 45, goto: {later}}}], holdout: 10}}}}")
        elif kind == "task":
            steps.append(f"  - {{id: {sid}, task: {{queue: renewal, due_within: 1d, script: gold_monthly_callback}}}}")
        elif draw(st.booleans()):
            steps.append(f"  - {{id: {sid}, update: {{field: customer.attributes.{draw(st.sampled_from(FLAGS))}, "
                         f"value: true}}}}")
        else:
            steps.append(f'  - {{id: {sid}, update: {{field: customer.attributes.due, '
                         f'value: "{around + timedelta(days=draw(st.sampled_from(DUE_DAYS)))}"}}}}')
    steps.append("  - {id: end, exit: {reason: finished}}")
    return "\n".join([*lines, "steps:", *steps]) + "\n"


def _when(draw: st.DrawFn) -> str:
    """A condition on the awaited event, now and then: on an attribute update steps set, or on none."""
    return draw(st.sampled_from(["", "", f", when: {_flow(CONDITIONS[3])}", f", when: {_flow(CONDITIONS[4])}"]))


def _flow(cond: dict[str, Any]) -> str:
    value = cond["value"]
    shown = "[" + ", ".join(value) + "]" if isinstance(value, list) else str(value).lower()
    return f"{{field: {cond['field']}, op: {cond['op']}, value: {shown}}}"


# --- one example --------------------------------------------------------------------------------

WRITE, PREVIEW, PREVIEW_THEN_WRITE = range(3)


@dataclass
class Example:
    people: list[dict[str, Any]]
    start: datetime
    days: int
    events: list[tuple[datetime, int, str, dict[str, Any]]]
    # (moment a run stands at, what happens there): WRITE, PREVIEW (a dry run only: the next
    # written run covers its window too) or PREVIEW_THEN_WRITE (a dry run, then the same run written,
    # which must write what the preview showed).
    cuts: list[tuple[datetime, int]]
    ticks: bool  # runs as ``journeys run`` makes them (plan ahead) rather than plain ``plan``
    journeys: list[str] = field(default_factory=list)
    cap: tuple[int, str] = (2, "7d")  # marketing touches per rolling window (config/delivery.yaml)
    # Touches a sliced run had stored as planned (filled in by ``_sliced``: which were pre-empted later).
    planned_once: set[str] = field(default_factory=set)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@st.composite
def examples(draw: st.DrawFn, max_people: int = 4, max_events: int = 10, max_cuts: int = 5) -> Example:
    start = draw(st.datetimes(min_value=datetime(2027, 1, 1), max_value=datetime(2028, 11, 30))).replace(
        second=0, microsecond=0, tzinfo=UTC)
    start -= timedelta(minutes=start.minute % 5)
    days = draw(st.integers(min_value=2, max_value=16))
    people = draw(st.lists(person, min_size=1, max_size=max_people))
    span = days * 24 * 60
    events = [(start + timedelta(minutes=m % span or 1), who % len(people), kind, dict(data))
              for m, who, kind, data in draw(st.lists(event, max_size=max_events))]
    events.sort(key=lambda e: e[0])
    ticks = draw(st.booleans())
    step = 5 if ticks else 1
    cut_minutes = set(draw(st.lists(st.integers(1, span // step - 1), min_size=0, max_size=max_cuts)))
    if ticks and draw(st.booleans()):
        # As in production: the tick just before each event has planned ahead when it arrives.
        cut_minutes |= {int((at - start).total_seconds() // 60) // step for at, *_ in events}
    cuts = [(start + timedelta(minutes=m * step), draw(st.sampled_from([WRITE, PREVIEW, PREVIEW_THEN_WRITE])))
            for m in sorted(cut_minutes)
            if 0 < m * step < span]
    journeys = [draw(generated_journey(n, start.date())) for n in range(draw(st.sampled_from([0, 1, 2, 2, 3])))]
    # Tighter caps than the shipped one make journeys contest a customer's days more often.
    cap = draw(st.sampled_from([(2, "7d"), (1, "1d"), (1, "3d")]))
    return Example(people, start, days, events, cuts, ticks, journeys, cap)


class World:
    """The journeys folder (shipped plus generated) and a migrated empty store to copy."""

    def __init__(self, root: Path, template_url: str | None) -> None:
        self.root = root
        self.journeys = root / "journeys"
        self.template = root / "template.db"
        if template_url is None:
            upgrade(f"sqlite:///{self.template}")
            get_engine.cache_clear()

    def use(self, ex: Example, monkeypatch: pytest.MonkeyPatch) -> None:
        # Files are rewritten only when they change: validation is redone for a folder that changed.
        if not self.journeys.exists():
            self.journeys.mkdir()
            for path in sorted((ROOT / "journeys").glob("*.yaml")):
                shutil.copy(path, self.journeys / path.name)
        wanted = {f"gen-{n}.yaml": text for n, text in enumerate(ex.journeys)}
        for path in self.journeys.glob("gen-*.yaml"):
            if path.name not in wanted:
                path.unlink()
        for name, text in wanted.items():
            path = self.journeys / name
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
        config = self.root / f"config-{ex.cap[0]}-{ex.cap[1]}"
        if not config.exists():
            shutil.copytree(ROOT / "config", config)
            lines = [line for line in (config / "delivery.yaml").read_text(encoding="utf-8").splitlines()
                     if not line.startswith(("marketing_cap:", "marketing_cap_window:"))]
            (config / "delivery.yaml").write_text(
                "\n".join([*lines, f"marketing_cap: {ex.cap[0]}", f"marketing_cap_window: {ex.cap[1]}", ""]),
                encoding="utf-8")
        monkeypatch.setenv("JOURNEYS_DIR", str(self.journeys))
        monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(ROOT / "templates"))
        monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))

    @contextmanager
    def stores(self, postgres: str | None) -> Iterator[tuple[str, str]]:
        """Two empty migrated stores: SQLite copies of the template, or PostgreSQL scratch databases."""
        if postgres is None:
            urls = []
            for name in ("window", "sliced"):
                path = self.root / f"{name}-{uuid.uuid4().hex[:8]}.db"
                shutil.copy(self.template, path)
                urls.append(f"sqlite:///{path}")
            try:
                yield urls[0], urls[1]
            finally:
                get_engine.cache_clear()
                for url in urls:
                    Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            return
        tag = uuid.uuid4().hex[:10]
        with scratch_postgres_database(postgres, f"journeys_si_w{tag}") as (window, _), \
                scratch_postgres_database(postgres, f"journeys_si_s{tag}") as (sliced, _):
            try:
                upgrade(window)
                upgrade(sliced)
                yield window, sliced
            finally:
                get_engine.cache_clear()


def _fill(url: str, ex: Example) -> list[str]:
    """The book, the same in every store; the customers' external ids."""
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(get_engine(url)) as session:
        customers = []
        for n, p in enumerate(ex.people, start=1):
            c = Customer(external_id=f"C{n:03d}", name=f"Customer {n}", tier=p["tier"], timezone=p["timezone"],
                         phone=f"+8613800000{n:03d}", wechat_openid=f"o{n}", email=f"c{n}@example.com",
                         consent_sms=p["consent_sms"], consent_wechat=p["consent_wechat"],
                         consent_email=p["consent_email"], birthday=p["birthday"],
                         birth_md=p["birthday"].month * 100 + p["birthday"].day,
                         attributes={"service_preference": p["preference"], **_due(ex, p)}, created_at=made,
                         updated_at=made)
            session.add(c)
            customers.append(c)
        session.flush()
        for n, (c, p) in enumerate(zip(customers, ex.people, strict=True), start=1):
            assert c.id is not None
            session.add(Policy(external_id=f"P{n:03d}", customer_id=c.id, product_line=p["line"],
                               annual_premium=1200.0, start_date=date(2020, 1, 1),
                               expiry_date=(ex.start + timedelta(days=p["expiry_days"])).date()))
        session.commit()
    return [f"C{n:03d}" for n in range(1, len(ex.people) + 1)]


def _due(ex: Example, p: dict[str, Any]) -> dict[str, str]:
    days = p.get("due_days")
    return {} if days is None else {"due": (ex.start + timedelta(days=days)).date().isoformat()}


def _payload(ex: Example, who: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"policy_id": f"P{who + 1:03d}"} if kind == "policy.renewed" else data


def _store_events(url: str, ex: Example) -> None:
    """Every event as reported, none acted on yet (what the one-window run starts from)."""
    with Session(get_engine(url)) as session:
        ids = dict(session.execute(select(Customer.external_id, Customer.id)).all())
        for n, (at, who, kind, data) in enumerate(ex.events):
            cid = ids[f"C{who + 1:03d}"]
            payload = _payload(ex, who, kind, data)
            session.add(Event(external_id=f"ev-{n}", type=kind, customer_id=cid, data=payload, occurred_at=at,
                              received_at=at))
            session.add_all(survey_answers(cid, payload, at) if kind == "survey.answered" else [])
        session.commit()


def _one_window(url: str, ex: Example) -> dict[str, dict[Any, Any]]:
    chunks: list[ChunkOutput] = []
    ahead = _horizon(url, ex.end) if ex.ticks else None
    result = plan(ex.end, ex.start, ahead=ahead, dry_run=True, url=url, sink=chunks.append)
    assert result.problems == []  # every journey (the generated ones too) is in force
    return _planned(url, chunks)


def _horizon(url: str, now: datetime) -> datetime:
    with Session(get_engine(url)) as session:
        zones = list(session.execute(select(Customer.timezone).distinct()).scalars())
    return through_next_local_day(now, zones)


def _sliced(url: str, ex: Example) -> dict[str, dict[Any, Any]]:
    pending = list(enumerate(ex.events))
    first = True
    for moment, how in [*ex.cuts, (ex.end, WRITE)]:
        while pending and pending[0][1][0] <= moment:
            n, (at, who, kind, data) = pending.pop(0)
            with simulated_time(lambda at=at: at):  # type: ignore[misc]
                emit_event(kind, f"C{who + 1:03d}", _payload(ex, who, kind, data), event_id=f"ev-{n}",
                           occurred_at=at, url=url)
        start = ex.start if first else None
        runs = {PREVIEW: [True], PREVIEW_THEN_WRITE: [True, False], WRITE: [False]}[how]
        seen: list[list[ChunkOutput]] = []
        for dry in runs:
            chunks: list[ChunkOutput] = []
            with simulated_time(lambda moment=moment: moment):  # type: ignore[misc]
                if ex.ticks:
                    plan_ahead(moment, start=start, dry_run=dry, url=url, sink=chunks.append)
                else:
                    plan(moment, start, dry_run=dry, url=url, sink=chunks.append)
            seen.append(chunks)
        if len(seen) == 2:
            preview, written = (_output(chunks) for chunks in seen)
            assert preview == written, f"the preview at {moment} is not what the run then wrote"
        first = first and how == PREVIEW
        if how != PREVIEW:
            with Session(get_engine(url)) as session:
                ex.planned_once |= set(session.exec(select(Touch.key).where(Touch.status == "planned")).all())
    return _written(url)


def _output(chunks: list[ChunkOutput]) -> list[Any]:
    """Everything a run planned, comparable between two runs."""
    return sorted((repr(d.wanted), d.status, d.channel, d.due_at, d.dropped_by, d.reason) for c in chunks
                  for d in c.decisions) + sorted(repr(x) for c in chunks for x in [*c.changes, *c.tasks,
                                                                                   *c.enrollments, *c.updates.items()])


def _planned(url: str, chunks: list[ChunkOutput]) -> dict[str, dict[Any, Any]]:
    """What a dry run planned, in the shape ``_written`` reads the store in."""
    out: dict[str, dict[Any, Any]] = {"touches": {}, "tasks": {}, "enrollments": {}, "attributes": {}}
    for c in chunks:
        assert c.changes == []  # nothing was stored before it to decide again
        for d in c.decisions:
            reason = f"{d.dropped_by}: {d.reason}"[:255] if not d.planned else None
            out["touches"][d.wanted.key] = (d.status, d.channel, d.due_at, reason)
        for t in c.tasks:
            out["tasks"][t.key] = (t.queue, t.due_at, t.priority, t.assignee_id)
        for e in c.enrollments:
            out["enrollments"][(e.customer_id, e.journey_id, e.occurrence)] = (
                e.state, e.step_id, e.next_at, e.step_started_at, e.exit_reason, e.exited_at, e.split_branch)
        out["attributes"].update(c.updates)
    with Session(get_engine(url)) as session:
        for cid, attributes in session.execute(select(Customer.id, Customer.attributes)).all():
            out["attributes"].setdefault(cid, attributes)
    return out


def _written(url: str) -> dict[str, dict[Any, Any]]:
    def utc(moment: datetime | None) -> datetime | None:
        return moment.astimezone(UTC) if moment is not None else None

    with Session(get_engine(url)) as session:
        return {
            "touches": {t.key: (t.status, t.channel, utc(t.due_at), t.error_reason)
                        for t in session.exec(select(Touch)).all()},
            "tasks": {t.key: (t.queue, utc(t.due_at), t.priority, t.assignee_id)
                      for t in session.exec(select(AgentTask)).all()},
            "enrollments": {(e.customer_id, e.journey_id, e.occurrence): (
                e.state, e.step_id, utc(e.next_at), utc(e.step_started_at), e.exit_reason, utc(e.exited_at),
                e.split_branch) for e in session.exec(select(Enrollment)).all()},
            "attributes": dict(session.execute(select(col(Customer.id), col(Customer.attributes))).all()),
        }


def _differences(url: str, window: dict[str, dict[Any, Any]], sliced: dict[str, dict[Any, Any]]) -> list[str]:
    with Session(get_engine(url)) as session:
        names = dict(session.execute(select(Customer.id, Customer.external_id)).all())

    def who(key: Any) -> str:
        if isinstance(key, tuple):
            cid, journey, occurrence = key
            return f"customer {names.get(cid, cid)}, journey {journey} ({occurrence})"
        cid, journey, step, occurrence = str(key).split(":", 3)
        return f"customer {names.get(int(cid), cid)}, journey {journey}, step {step} ({occurrence})"

    out = []
    for kind, one in (("touches", "touch"), ("tasks", "task"), ("enrollments", "enrollment")):
        for key in sorted(set(window[kind]) | set(sliced[kind]), key=str):
            a, b = window[kind].get(key), sliced[kind].get(key)
            if a != b:
                out.append(f"{one} of {who(key)}: one dry run {a} != sliced runs {b}")
    for cid in sorted(set(window["attributes"]) | set(sliced["attributes"])):
        if window["attributes"].get(cid) != sliced["attributes"].get(cid):
            out.append(f"attributes of customer {names.get(cid, cid)}: one dry run {window['attributes'].get(cid)} "
                       f"!= sliced runs {sliced['attributes'].get(cid)}")
    return out


def check(world: World, ex: Example, monkeypatch: pytest.MonkeyPatch, postgres: str | None = None) -> None:
    world.use(ex, monkeypatch)
    with world.stores(postgres) as (window_url, sliced_url):
        _fill(window_url, ex)
        _fill(sliced_url, ex)
        _store_events(window_url, ex)
        window = _one_window(window_url, ex)
        sliced = _sliced(sliced_url, ex)
        differences = _differences(sliced_url, window, sliced)
        for kind in ("touches", "tasks", "enrollments"):
            n = len(sliced[kind])
            statistic(f"{kind}: {'0' if n == 0 else '1-4' if n < 5 else '5-19' if n < 20 else '20+'}")
        rules = sorted({t[3].split(":", 1)[0] for t in sliced["touches"].values() if t[3]})
        statistic(f"drops: {rules}")
        later = sum(1 for k, t in sliced["touches"].items() if k in ex.planned_once and t[0] == "dropped")
        statistic(f"stored planned, later dropped: {'yes' if later else 'no'}")
        statistic(f"exits: {sorted({e[4] for e in sliced['enrollments'].values() if e[4]})}")
        assert not differences, "\n".join(
            [f"{len(differences)} difference(s) between one dry run over ({ex.start}, {ex.end}] and "
             f"{'ticks' if ex.ticks else 'runs'} at {[(m.isoformat(), how) for m, how in ex.cuts]}"
             f" (cap {ex.cap[0]} per {ex.cap[1]}):",
             *itertools.islice(differences, 20)])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("slicing"), None)


def _contested(ticks: bool, cap: tuple[int, str]) -> Example:
    """A week in which journeys contest the same customers' days, and events arrive between runs: the
    drawn examples meet the cap rarely, so two that always do run first."""
    start = datetime(2027, 3, 1, tzinfo=UTC)
    everybody = {"consent_sms": True, "consent_wechat": True, "consent_email": True, "line": "motor",
                 "preference": "travel"}
    people = [{**everybody, "tier": "silver", "timezone": "Asia/Shanghai", "birthday": date(1980, 3, 4),
               "expiry_days": 31},
              {**everybody, "tier": "gold", "timezone": "America/Los_Angeles", "birthday": date(1975, 3, 6),
               "expiry_days": 33}]
    hours: list[tuple[int, int, str, dict[str, Any]]] = [
        (26, 0, "app.login", {"platform": "ios"}), (27, 1, "complaint.filed", {"category": "service"}),
        (40, 0, "survey.answered", {"survey": "nps", "nps": 3}), (51, 1, "complaint.resolved", {}),
        (75, 0, "app.login", {"platform": "ios"}), (80, 1, "policy.renewed", {}),
        (99, 0, "message.replied", {"text": "1"}), (123, 1, "app.login", {"platform": "ios"})]
    events = [(start + timedelta(hours=h), who, kind, data) for h, who, kind, data in hours]
    moments = [start + timedelta(hours=h) for h in (2, 25.5, 26.25, 39.75, 50, 74.5, 98, 122.5, 140)]
    cuts = [(m, [WRITE, PREVIEW, PREVIEW_THEN_WRITE][n % 3]) for n, m in enumerate(moments)]
    journeys = [
        "id: gen-0\nname: Daily low\ncategory: marketing\npriority: 10\n"
        'entry: {schedule: {cron: "0 9 * * *"}}\nsteps:\n'
        "  - {id: s0, send: {channels: [wechat, sms], template: silver_weekly_push}}\n"
        "  - {id: s1, wait: 20h}\n  - {id: s2, send: {channels: [sms], template: silver_weekly_push}}\n",
        "id: gen-1\nname: Evening high\ncategory: marketing\npriority: 70\n"
        'entry: {schedule: {cron: "30 18 * * *"}}\ngoal: {event: app.login}\nsteps:\n'
        "  - {id: s0, update: {field: customer.attributes.flag_a, value: true}}\n"
        "  - {id: s1, send: {channels: [wechat, sms], template: silver_weekly_push}}\n"
        "  - {id: s2, wait_for: {event: message.replied, timeout: 1d, on_event: end, on_timeout: next}}\n"
        "  - {id: s3, branch: {cases: [{when: {field: customer.attributes.flag_a, op: eq, value: true}, "
        "goto: end}], otherwise: next}}\n"
        "  - {id: s4, task: {queue: renewal, due_within: 1d, script: gold_monthly_callback}}\n"
        "  - {id: end, exit: {reason: finished}}\n",
        # A login's touch outranks both: the sliced runs find the day's touches already planned
        # and pre-empt them, the one window drops them in the same contest.
        "id: gen-2\nname: Welcome back\ncategory: marketing\npriority: 90\n"
        "entry: {event: {type: app.login}}\nsteps:\n"
        "  - {id: s0, send: {channels: [sms], template: silver_weekly_push}}\n",
    ]
    return Example(people, start, 7, events, cuts, ticks, journeys, cap)


def _date_moved_while_waiting(ticks: bool, cut_hours: float) -> Example:
    """A wait until a date attribute that another journey moves after the wait began: the wait
    ends where the date stood when it began, whichever run picks it up; and a run planning ahead
    of the moves begins it only at its moment, once the moves before it are made. A date entry on
    the attribute enters on the day before the date it holds then: the first date set is moved
    before its day, so only the second enters, in one run as in runs cut between the moves."""
    start = datetime(2027, 3, 1, tzinfo=UTC)
    people = [{"tier": "silver", "timezone": "Asia/Shanghai", "consent_sms": True, "consent_wechat": True,
               "consent_email": True, "birthday": date(1980, 3, 4), "preference": "travel", "line": "motor",
               "expiry_days": 31}]
    journeys = [
        'id: gen-0\nname: Waits\ncategory: service\nentry: {schedule: {cron: "0 9 1 3 *"}}\nsteps:\n'
        '  - {id: s0, wait: {until: {anchor: customer.attributes.due, at: "10:00"}}}\n'
        "  - {id: s1, send: {channels: [sms], template: nps_survey}}\n",
        'id: gen-1\nname: Sets\ncategory: service\nentry: {schedule: {cron: "30 8 1 3 *"}}\nsteps:\n'
        '  - {id: s0, update: {field: customer.attributes.due, value: "2027-03-06"}}\n',
        'id: gen-2\nname: Moves\ncategory: service\nentry: {schedule: {cron: "0 12 1 3 *"}}\nsteps:\n'
        '  - {id: s0, update: {field: customer.attributes.due, value: "2027-03-04"}}\n',
        'id: gen-3\nname: Day before\ncategory: service\n'
        'entry: {date: {anchor: customer.attributes.due, offset: -1d, at: "10:00"}}\nsteps:\n'
        "  - {id: s0, send: {channels: [sms], template: nps_survey}}\n",
    ]
    return Example(people, start, 8, [], [(start + timedelta(hours=cut_hours), WRITE)], ticks, journeys)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@example(ex=_date_moved_while_waiting(ticks=False, cut_hours=6))
@example(ex=_date_moved_while_waiting(ticks=True, cut_hours=0.25))
@example(ex=_contested(ticks=True, cap=(1, "1d")))
@example(ex=_contested(ticks=False, cap=(2, "3d")))
@given(ex=examples())
def test_one_dry_run_plans_what_any_slicing_writes(world: World, ex: Example,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    check(world, ex, monkeypatch)


@pytest.mark.postgres
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ex=examples(max_people=3, max_events=6, max_cuts=3))
def test_one_dry_run_plans_what_any_slicing_writes_on_postgres(
        postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory, ex: Example,
        monkeypatch: pytest.MonkeyPatch) -> None:
    check(World(tmp_path_factory.mktemp("slicing-pg"), postgres_admin_url), ex, monkeypatch, postgres_admin_url)


@settings(max_examples=30, deadline=None)
@given(text=generated_journey(0))
def test_the_generated_journeys_are_valid(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """The generator writes journeys the validator accepts (one rejected would not run at all)."""
    from engine.language.validation import validate_journey_file

    path = tmp_path_factory.mktemp("generated") / "gen-0.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert loaded is not None and not problems, (textwrap.indent(text, "  "), [str(p) for p in problems])
