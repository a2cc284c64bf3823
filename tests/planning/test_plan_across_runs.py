"""What journeys do when the plan is cut into many runs, as production cuts it: waits and wait_fors
picked up again from the store, and the cap's priority across runs, events and days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from engine.language.settings_model import DeliveryConfig
from engine.loop.events import emit_event
from engine.planning.explain import explain
from engine.planning.planner import plan
from store.clock import simulated_time
from store.db import get_engine
from store.models import Enrollment, Event, Policy
from tests.journey_support import journey
from tests.plan_support import Book, send_journey, utc, vip_branch

# Expiry on 10 April 2027: the reminder is due at 10:00 Shanghai on 11 March (02:00 UTC).
EXPIRY = date(2027, 4, 10)
REMINDER = utc(2027, 3, 11, 2)


def _runs(book: Book, start: datetime, end: datetime, every: timedelta,
          events: list[tuple[datetime, str, str, dict[str, Any]]] = (),  # type: ignore[assignment]
          run: Callable[..., Any] = plan) -> None:
    """Written runs every ``every`` from ``start`` to ``end``, each event emitted (at the moment it
    happened) between the runs around it, as the event path does in production."""
    pending = sorted(events, key=lambda e: e[0])
    moment, first = start + every, True
    while True:
        moment = min(moment, end)
        while pending and pending[0][0] <= moment:
            at, kind, customer, data = pending.pop(0)
            with simulated_time(lambda at=at: at):  # type: ignore[misc]
                emit_event(kind, customer, data, occurred_at=at, url=book.url)
        run(moment, start if first else None, url=book.url)
        first = False
        if moment >= end:
            return
        moment += every


def _renewal_book(book: Book) -> dict[str, int]:
    book.shipped("renewal-reminder")
    ids = {tier: book.customer(external_id=f"R-{tier}", tier=tier) for tier in ("silver", "gold", "potential")}
    for n, cid in enumerate(ids.values()):
        book.add(Policy(external_id=f"P{n}", customer_id=cid, product_line="motor", annual_premium=1200.0,
                        start_date=date(2026, 4, 10), expiry_date=EXPIRY))
    return ids


def _renewal_outcome(book: Book) -> tuple[list[tuple[int, str, datetime]], list[tuple[int, datetime]], dict[int, Any]]:
    touches = [(t.customer_id, t.step_id, t.due_at) for t in book.touches()]
    tasks = [(t.customer_id, t.due_at) for t in book.tasks()]
    with Session(get_engine(book.url)) as session:
        exits = {e.customer_id: (e.state, e.exit_reason, e.exited_at) for e in session.exec(select(Enrollment)).all()}
    return touches, tasks, exits


def test_a_wait_for_picked_up_again_keeps_its_own_deadline(sqlite_book: Book) -> None:
    """A renewal reminder planned run by run (daily, and hourly around the waits) sends the second
    and last reminders on their days, books the callback on its day, and leaves ``not_renewed`` at
    expiry; a renewal 15 days before expiry still counts. The same as one dry run over the weeks."""
    book = sqlite_book
    ids = _renewal_book(book)
    renewed = (utc(2027, 3, 26, 5), "policy.renewed", "R-potential", {"policy_id": "P2"})
    start, end = utc(2027, 3, 10), utc(2027, 4, 12)
    expected_touches = sorted([
        (ids["silver"], "reminder", REMINDER), (ids["gold"], "reminder", REMINDER),
        (ids["potential"], "reminder", REMINDER),
        (ids["silver"], "second_reminder", REMINDER + timedelta(days=10)),
        (ids["potential"], "second_reminder", REMINDER + timedelta(days=10)),
        (ids["silver"], "last_reminder", REMINDER + timedelta(days=23)),
        (ids["gold"], "last_reminder", REMINDER + timedelta(days=23)),
    ], key=lambda t: (t[2], t[0]))
    expected_exits = {
        ids["silver"]: ("done", "not_renewed", REMINDER + timedelta(days=30)),
        ids["gold"]: ("done", "not_renewed", REMINDER + timedelta(days=30)),
        ids["potential"]: ("exited", "goal", renewed[0]),
    }
    _runs(book, start, end, timedelta(days=1), [renewed])
    touches, tasks, exits = _renewal_outcome(book)
    assert sorted(touches, key=lambda t: (t[2], t[0])) == expected_touches
    # Callback on day -20 (Sunday 21 March, 10:00 in Shanghai), due within 2 days on the renewal queue's
    # business clock: from Monday's opening, two working days on, Wednesday 24 March 09:00.
    assert tasks == [(ids["gold"], utc(2027, 3, 24, 1))]
    assert exits == expected_exits


def test_a_dry_run_over_the_weeks_shows_what_the_runs_then_write(sqlite_book: Book) -> None:
    book = sqlite_book
    ids = _renewal_book(book)
    seen: list[Any] = []
    plan(utc(2027, 4, 12), utc(2027, 3, 10), dry_run=True, url=book.url, sink=seen.append)
    previewed = sorted((d.wanted.customer_id, d.wanted.step_id, d.due_at) for c in seen for d in c.decisions)
    _runs(book, utc(2027, 3, 10), utc(2027, 4, 12), timedelta(hours=7))
    touches, _, exits = _renewal_outcome(book)
    assert sorted(touches) == previewed
    assert (ids["silver"], "last_reminder", REMINDER + timedelta(days=23)) in previewed
    assert {c: e[1] for c, e in exits.items()} == dict.fromkeys(ids.values(), "not_renewed")


def test_a_complaint_resolved_after_the_escalation_still_gets_its_follow_up(sqlite_book: Book) -> None:
    book = sqlite_book
    book.shipped("complaint-response")
    book.customer(external_id="K1")
    filed = utc(2027, 3, 1, 2)
    resolved = filed + timedelta(hours=30)  # after the 24 h escalation, within the next 72 h
    _runs(book, filed - timedelta(hours=1), filed + timedelta(days=5), timedelta(hours=2), [
        (filed, "complaint.filed", "K1", {"category": "service"}),
        (resolved, "complaint.resolved", "K1", {}),
    ])
    assert [(t.step_id, t.due_at) for t in book.touches()] == [
        ("acknowledge", filed), ("follow_up", resolved + timedelta(days=1))]
    assert [(t.queue, t.due_at) for t in book.tasks()] == [
        ("complaints", filed + timedelta(hours=24)), ("complaints_supervisor", filed + timedelta(hours=28))]
    with Session(get_engine(book.url)) as session:
        [e] = session.exec(select(Enrollment)).all()
        [complaint] = session.exec(select(Event).where(Event.type == "complaint.filed")).all()
    assert (e.state, e.exit_reason, e.exited_at) == ("done", "resolved", resolved + timedelta(days=1))
    # The enrollment and both its tasks name the complaint they answer (what the metrics join on).
    assert {e.event_id, *(t.event_id for t in book.tasks())} == {complaint.id}
    # So do the supervisor tasks the desk opens for them once overdue (``console.assignment``).
    from console.assignment import escalate_overdue

    assert escalate_overdue(filed + timedelta(days=6), db_url=book.url) == 2
    assert sorted((t.key.split(":")[0], t.event_id) for t in book.tasks() if t.parent_task_id is not None) == [
        ("escalation", complaint.id), ("escalation", complaint.id)]


def _either_then_done(first: str, second: str) -> str:
    """The two send steps a decision goes to (YAML at step level): ``first`` skips ``second``, and
    both end the journey at ``done``."""
    return f"""\
  - id: {first}
    send: {{channels: [sms], template: msg}}
    next: done
  - id: {second}
    send: {{channels: [sms], template: msg}}
  - id: done
    exit: {{reason: done}}
"""


WAIT_THEN_WAIT_FOR = journey("nudge", "Nudge", '{schedule: {cron: "0 10 1 * *"}}', """\
  - id: hello
    send: {channels: [sms], template: msg}
  - id: pause
    wait: 1d
  - id: listen
    wait_for: {event: app.login, timeout: 2d, on_event: thanks, on_timeout: remind}
""" + _either_then_done("remind", "thanks"))


def test_a_wait_for_after_a_wait_starts_when_the_wait_ends(sqlite_book: Book) -> None:
    # Stored between the two, the enrollment is in the wait, not yet in the wait_for: a run that
    # picks it up starts the wait_for then, and its timeout is two days later.
    book = sqlite_book
    book.journey("nudge", WAIT_THEN_WAIT_FOR)
    cid = book.customer()
    _runs(book, utc(2027, 3, 1), utc(2027, 3, 6), timedelta(hours=12))
    assert [(t.step_id, t.due_at) for t in book.touches()] == [
        ("hello", utc(2027, 3, 1, 2)), ("remind", utc(2027, 3, 4, 2))]
    with Session(get_engine(book.url)) as session:
        [e] = session.exec(select(Enrollment).where(col(Enrollment.customer_id) == cid)).all()
    assert (e.exit_reason, e.exited_at) == ("done", utc(2027, 3, 4, 2))


def test_enrollments_stored_by_the_previous_version_carry_on_as_it_meant(sqlite_book: Book) -> None:
    """Rows written before ``step_started_at`` existed: at a wait_for step, inside it since its
    deadline minus the timeout; at any other step, arriving there at ``next_at``."""
    book = sqlite_book
    book.journey("nudge", WAIT_THEN_WAIT_FOR)
    a, b = book.customer(external_id="A"), book.customer(external_id="B")
    version = "0" * 8
    book.add(
        Enrollment(customer_id=a, journey_id="nudge", journey_version=version, occurrence="2027-03-01T10:00",
                   step_id="listen", state="waiting", next_at=utc(2027, 3, 4, 2), entered_at=utc(2027, 3, 1, 2)),
        Enrollment(customer_id=b, journey_id="nudge", journey_version=version, occurrence="2027-03-01T10:00",
                   step_id="remind", state="waiting", next_at=utc(2027, 3, 4, 2), entered_at=utc(2027, 3, 1, 2)),
    )
    with simulated_time(lambda: utc(2027, 3, 3)):
        emit_event("app.login", "A", {}, occurred_at=utc(2027, 3, 3), url=book.url)
    plan(utc(2027, 3, 5), utc(2027, 3, 2, 12), url=book.url)
    assert [(t.customer_id, t.step_id, t.due_at) for t in book.touches()] == [
        (a, "thanks", utc(2027, 3, 3)), (b, "remind", utc(2027, 3, 4, 2))]


# --- priority across runs ----------------------------------------------------------------------

ONE_A_DAY = DeliveryConfig(marketing_cap=1, marketing_cap_window="1d")


def _marketing(name: str, priority: int, cron: str) -> str:
    return send_journey(name, name, f'{{schedule: {{cron: "{cron}"}}}}', step="push", channels="[sms]",
                        category="marketing", priority=priority)


def _outcome(book: Book) -> list[tuple[str, datetime, str, str | None]]:
    return [(t.journey_id, t.due_at, t.status, t.error_reason) for t in book.touches()]


def _low_and_high(book: Book, low_cron: str, high_cron: str) -> None:
    """One customer in two marketing journeys, ``low`` (priority 10) and ``high`` (priority 90)."""
    book.journey("low", _marketing("low", 10, low_cron))
    book.journey("high", _marketing("high", 90, high_cron))
    book.customer()


def _high_pre_empts_low(low_due: datetime, high_due: datetime) -> list[tuple[str, datetime, str, str | None]]:
    """The outcome where one marketing touch a day is allowed and ``high`` wins the day."""
    return [("low", low_due, "dropped", "pre_empted: pre-empted by high"), ("high", high_due, "planned", None)]


def test_priority_holds_for_a_local_day_planned_in_five_minute_runs(sqlite_book: Book) -> None:
    # One marketing touch a day: the priority-90 touch at 10:00 wins the day over the priority-10
    # one at 09:00 planned an hour earlier by another run.
    book = sqlite_book
    _low_and_high(book, "0 9 * * *", "0 10 * * *")
    _runs(book, utc(2027, 3, 1, 0, 30), utc(2027, 3, 1, 2, 30), timedelta(minutes=5),
          run=lambda at, start, url: plan(at, start, url=url, delivery=ONE_A_DAY))
    assert _outcome(book) == _high_pre_empts_low(utc(2027, 3, 1, 1), utc(2027, 3, 1, 2))


def test_priority_holds_for_a_los_angeles_monday_split_across_daily_runs(sqlite_book: Book) -> None:
    # Runs at midnight Shanghai (16:00 UTC) cut a Los Angeles day in two: the daily 09:00 touch falls
    # in one run, Monday's 10:00 weekly push in the next. The weekly push wins both Mondays.
    book = sqlite_book
    book.journey("daily", _marketing("daily", 10, "0 9 * * *"))
    book.journey("weekly", _marketing("weekly", 40, "0 10 * * MON"))
    book.customer(timezone="America/Los_Angeles")
    _runs(book, utc(2027, 4, 2, 16), utc(2027, 4, 16, 16), timedelta(days=1),
          run=lambda at, start, url: plan(at, start, url=url, delivery=ONE_A_DAY))
    mondays = [(j, due, status, reason) for j, due, status, reason in _outcome(book)
               if due.date() in (date(2027, 4, 5), date(2027, 4, 12))]
    assert mondays == [
        ("daily", utc(2027, 4, 5, 16), "dropped", "pre_empted: pre-empted by weekly"),
        ("weekly", utc(2027, 4, 5, 17), "planned", None),
        ("daily", utc(2027, 4, 12, 16), "dropped", "pre_empted: pre-empted by weekly"),
        ("weekly", utc(2027, 4, 12, 17), "planned", None)]


@pytest.fixture
def one_a_day(sqlite_book: Book, tmp_path: Any) -> Book:
    """The shipped configuration, but one marketing touch per rolling day (for ``journeys run``,
    which reads the configuration folder)."""
    import shutil

    from tests.plan_support import ROOT

    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    text = (config / "delivery.yaml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith(("marketing_cap:", "marketing_cap_window:"))]
    (config / "delivery.yaml").write_text("\n".join([*lines, "marketing_cap: 1", 'marketing_cap_window: "1d"', ""]),
                                          encoding="utf-8")
    sqlite_book.monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    return sqlite_book


def test_journeys_run_decides_the_day_before_it_starts(one_a_day: Book) -> None:
    from engine.planning.planner import plan_ahead

    book = one_a_day
    _low_and_high(book, "0 9 2 3 *", "0 10 2 3 *")
    # The tick at 08:00 Shanghai the day before already planned the whole next day.
    plan_ahead(utc(2027, 3, 1, 0), start=utc(2027, 2, 28, 23), url=book.url)
    assert _outcome(book) == _high_pre_empts_low(utc(2027, 3, 2, 1), utc(2027, 3, 2, 2))


def test_an_event_touch_of_higher_priority_pre_empts_a_planned_one(one_a_day: Book) -> None:
    from engine.planning.planner import plan_ahead

    book = one_a_day
    book.journey("low", _marketing("low", 10, "0 14 * * *"))
    book.journey("welcome", send_journey("welcome", "Welcome back", "{event: {type: app.login}}", step="offer",
                                         channels="[sms]", category="marketing", priority=80))
    book.customer(external_id="E1")
    plan_ahead(utc(2027, 3, 1, 0), start=utc(2027, 2, 28, 23), url=book.url)
    assert ("low", utc(2027, 3, 1, 6), "planned", None) in _outcome(book)
    with simulated_time(lambda: utc(2027, 3, 1, 3)):
        emit_event("app.login", "E1", {}, occurred_at=utc(2027, 3, 1, 3), url=book.url)
    assert [o for o in _outcome(book) if o[1].date() == date(2027, 3, 1)] == [
        ("welcome", utc(2027, 3, 1, 3), "planned", None),
        ("low", utc(2027, 3, 1, 6), "dropped", "pre_empted: pre-empted by welcome")]
    report = explain("E1", utc(2027, 3, 1, 4), url=book.url)
    [low] = [t for t in report["touches"] if t["journey"] == "low" and t["source"] == "store"
             and t["planned_for"].startswith("2027-03-01")]
    assert (low["status"], low["rule"], low["reason"]) == ("dropped", "pre_empted", "pre_empted: pre-empted by welcome")


# --- explain: policies and claims, tasks ---------------------------------------------------------


def test_explain_judges_each_policy_and_shows_the_next_task(sqlite_book: Book) -> None:
    book = sqlite_book
    book.shipped("renewal-reminder", "gold-monthly-callback")
    cid = book.customer(external_id="G1", tier="gold")
    book.add(Policy(external_id="P-car", customer_id=cid, product_line="motor", annual_premium=900.0,
                    start_date=date(2026, 5, 1), expiry_date=date(2027, 5, 1)),
             Policy(external_id="P-home", customer_id=cid, product_line="property", annual_premium=600.0,
                    start_date=date(2026, 6, 1), expiry_date=date(2027, 6, 1)),
             Policy(external_id="P-old", customer_id=cid, product_line="health", annual_premium=600.0,
                    start_date=date(2025, 6, 1), expiry_date=date(2026, 6, 1), status="lapsed"))
    report = explain("G1", utc(2027, 3, 15), url=book.url)
    journeys = {j["journey"]: j for j in report["journeys"]}
    renewal = journeys["renewal-reminder"]
    assert [(p["policy"], p["holds"]) for p in renewal["policies"]] == [
        ("P-old", False), ("P-car", True), ("P-home", True)]
    assert [(c["text"], c["actual"], c["passed"]) for c in renewal["policies"][0]["conditions"]] == [
        ("policy.status eq 'active'", "lapsed", False), ("policy.renewed eq False", False, True)]
    assert renewal["in_audience"] is True and renewal["conditions_hold"] is True
    assert renewal["next_fire"] == "2027-04-01T10:00:00+08:00"
    callback = journeys["gold-monthly-callback"]
    assert callback["next_task"] == {
        "journey": "gold-monthly-callback", "step": "callback", "queue": "gold_callback",
        # 7 working days on gold_callback's business clock: a weekend, Qingming and a weekend between.
        "at": "2027-04-01T10:00:00+08:00", "due_at": "2027-04-13T10:00:00+08:00", "source": "next entry"}
    assert renewal["next_task"] is None  # its callback comes only after ten days without renewal


MARK = journey("mark", "Mark", '{schedule: {cron: "0 9 * * *"}}', """\
  - id: set
    update: {field: customer.attributes.vip, value: true}
""")
GREET = journey("greet", "Greet", "{event: {type: app.login}}",
                vip_branch("which", "vip", "next") + _either_then_done("plain", "vip"))


def test_an_event_comes_after_what_its_customer_had_due_before_it(sqlite_book: Book) -> None:
    # 09:00 marks the customer; a login at 09:30, before the next plan run, sees the mark.
    book = sqlite_book
    book.journey("mark", MARK)
    book.journey("greet", GREET)
    book.customer(external_id="V1")
    plan(utc(2027, 3, 1, 0, 50), utc(2027, 3, 1), url=book.url)
    with simulated_time(lambda: utc(2027, 3, 1, 1, 30)):
        emit_event("app.login", "V1", {}, occurred_at=utc(2027, 3, 1, 1, 30), url=book.url)
    plan(utc(2027, 3, 1, 2), url=book.url)
    assert [(t.step_id, t.due_at) for t in book.touches()] == [("vip", utc(2027, 3, 1, 1, 30))]


def test_within_one_run_an_update_is_seen_only_after_its_moment(sqlite_book: Book) -> None:
    # One run over the day: the login at 08:30 comes before the 09:00 mark, the one at 09:30 after it.
    book = sqlite_book
    book.journey("mark", MARK)
    book.journey("greet", GREET)
    cid = book.customer(external_id="V2")
    for n, at in enumerate((utc(2027, 3, 1, 0, 30), utc(2027, 3, 1, 1, 30))):
        book.add(Event(external_id=f"login-{n}", type="app.login", customer_id=cid, data={}, occurred_at=at,
                       received_at=at))
    plan(utc(2027, 3, 1, 12), utc(2027, 3, 1), url=book.url)
    assert [(t.step_id, t.due_at) for t in book.touches()] == [
        ("plain", utc(2027, 3, 1, 0, 30)), ("vip", utc(2027, 3, 1, 1, 30))]


def test_the_plan_job_plans_through_every_customers_next_local_day(sqlite_book: Book) -> None:
    """What ``journeys run`` plans to at each tick (``engine.runtime.flows``, the plan job)."""
    from engine.runtime.flows import plan_task

    book = sqlite_book
    book.journey("low", _marketing("low", 10, "0 9 * * *"))
    book.customer(timezone="Asia/Shanghai")
    book.customer(timezone="America/Los_Angeles")
    now = utc(2027, 3, 1, 3)  # 11:00 on 1 March in Shanghai, 19:00 on 28 February in Los Angeles
    # (no run before it: it starts a day back)
    with simulated_time(lambda: now):
        plan_task.fn(now)
    with Session(get_engine(book.url)) as session:
        from store.models import KeyValue

        cursor = session.get(KeyValue, "plan:last_end")
        assert cursor is not None
    # The end of 2 March in Shanghai (16:00 UTC) is later than the end of 1 March in Los Angeles.
    assert cursor.value == {"end": "2027-03-02T16:00:00+00:00", "now": "2027-03-01T03:00:00+00:00"}
    assert [t.due_at for t in book.touches()] == [
        utc(2027, 2, 28, 17), utc(2027, 3, 1, 1), utc(2027, 3, 1, 17), utc(2027, 3, 2, 1)]
