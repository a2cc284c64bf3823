"""One result however time is sliced (``test_slicing_invariance``), at the edges a random draw seldom
hits: an awaited event at the very minute of the timeout, a branch reading what an update step set in
the same minute (of its own journey and of another), re-entry after an exit, quiet hours crossed
between two ticks, customers in zones off the whole hour, a birthday on 29 February, and events
arriving out of their order or twice.

Each case is planned once over the period and in 5-minute ticks as ``journeys run`` makes them (and
in plain runs), the events emitted between the ticks through the product's event path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from store.clock import simulated_time
from tests.planning import test_slicing_invariance as slicing
from tests.planning.test_slicing_invariance import WRITE, Example, World, check
from tests.planning.test_slicing_invariance import world as world  # the module's fixture

START = datetime(2027, 3, 1, tzinfo=UTC)  # 08:00 in Shanghai


def _person(**over: Any) -> dict[str, Any]:
    return {"tier": "silver", "timezone": "Asia/Shanghai", "consent_sms": True, "consent_wechat": True,
            "consent_email": True, "birthday": date(1980, 3, 4), "preference": "travel", "line": "motor",
            "expiry_days": 31, **over}


def _ticks(start: datetime, end: datetime, every: timedelta = timedelta(minutes=5)) -> list[tuple[datetime, int]]:
    out, at = [], start + every
    while at < end:
        out.append((at, WRITE))
        at += every
    return out


def _around(*moments: datetime, span: int = 15) -> list[tuple[datetime, int]]:
    """Ticks every 5 minutes from ``span`` minutes before to ``span`` after each moment."""
    cuts = {m + timedelta(minutes=d) for m in moments for d in range(-span, span + 1, 5)}
    return [(m, WRITE) for m in sorted(cuts)]


SEND = "send: {channels: [sms], template: nps_survey}"

# An awaited login at the deadline's very minute (09:00 + 3h, Shanghai).
AT_DEADLINE = ["id: gen-0\nname: Waits\ncategory: service\n"
               'entry: {schedule: {cron: "0 9 1 3 *"}}\nsteps:\n'
               "  - {id: s0, wait_for: {event: app.login, timeout: 3h, on_event: s1, on_timeout: s2}}\n"
               f"  - {{id: s1, {SEND}}}\n  - {{id: end1, exit: {{reason: logged_in}}}}\n"
               f"  - {{id: s2, {SEND}}}\n  - {{id: end2, exit: {{reason: timed}}}}\n"]

# An update and a branch on it in the same minute: within one journey, and across two.
SAME_MINUTE = [
    "id: gen-0\nname: Own\ncategory: service\n"
    'entry: {schedule: {cron: "0 10 1 3 *"}}\nsteps:\n'
    "  - {id: s0, update: {field: customer.attributes.flag_b, value: true}}\n"
    "  - {id: s1, branch: {cases: [{when: {field: customer.attributes.flag_b, op: eq, value: true}, goto: s2}], "
    "otherwise: s3}}\n"
    f"  - {{id: s2, {SEND}}}\n  - {{id: e2, exit: {{reason: set}}}}\n  - {{id: s3, {SEND}}}\n",
    "id: gen-1\nname: Setter\ncategory: service\n"
    'entry: {schedule: {cron: "0 10 1 3 *"}}\nsteps:\n'
    "  - {id: s0, update: {field: customer.attributes.flag_a, value: true}}\n",
    "id: gen-2\nname: Reader\ncategory: service\n"
    'entry: {schedule: {cron: "0 10 1 3 *"}}\nsteps:\n'
    "  - {id: s1, branch: {cases: [{when: {field: customer.attributes.flag_a, op: eq, value: true}, goto: s2}], "
    "otherwise: s3}}\n"
    f"  - {{id: s2, {SEND}}}\n  - {{id: e2, exit: {{reason: set}}}}\n  - {{id: s3, {SEND}}}\n",
]

# Entered on each login, out at once, in again after a day.
REENTRY = ["id: gen-0\nname: Again\ncategory: service\nentry: {event: {type: app.login}}\n"
           "reentry: {allowed: true, after: 1d}\nsteps:\n"
           f"  - {{id: s0, {SEND}}}\n  - {{id: s1, wait: 2h}}\n  - {{id: s2, {SEND}}}\n"
           "  - {id: end, exit: {reason: done}}\n"]

# Sent 5 minutes after a login: at 20:58 local that is in the quiet hours, held to 08:00.
QUIET = ["id: gen-0\nname: Late\ncategory: service\nentry: {event: {type: app.login}}\n"
         "reentry: {allowed: true}\nsteps:\n"
         f"  - {{id: s0, wait: 5m}}\n  - {{id: s1, {SEND}}}\n"]

# Daily at 10:00 local, in zones half and three quarters of an hour off UTC.
DAILY = ["id: gen-0\nname: Daily\ncategory: service\n"
         'entry: {schedule: {cron: "0 10 * * *"}}\nreentry: {allowed: true}\nsteps:\n'
         f"  - {{id: s0, {SEND}}}\n  - {{id: s1, wait: {{until: \"21:30\"}}}}\n  - {{id: s2, {SEND}}}\n"]


def _example(case: str, ticks: bool) -> Example:
    if case == "login at the deadline":
        login = START + timedelta(hours=4)  # 12:00 Shanghai: 09:00 + 3h
        return Example([_person()], START, 1, [(login, 0, "app.login", {"platform": "ios"})],
                       _around(login), ticks, AT_DEADLINE)
    if case == "branch on an update of the same minute":
        ten = START + timedelta(hours=2)
        return Example([_person()], START, 1, [], _around(ten), ticks, SAME_MINUTE)
    if case == "re-entry after exit":
        logins = [START + timedelta(hours=h) for h in (1, 3, 20, 27, 50)]
        return Example([_person()], START, 3, [(at, 0, "app.login", {"platform": "ios"}) for at in logins],
                       _around(*logins, span=10), ticks, REENTRY)
    if case == "quiet hours across a tick":
        # 20:58 in Shanghai, in Kolkata (+05:30) and in Kathmandu (+05:45).
        people = [_person(), _person(timezone="Asia/Kolkata"), _person(timezone="Asia/Kathmandu")]
        arrivals = [(datetime(2027, 3, 1, 12, 58, tzinfo=UTC), 0), (datetime(2027, 3, 1, 15, 28, tzinfo=UTC), 1),
                    (datetime(2027, 3, 1, 15, 13, tzinfo=UTC), 2)]
        return Example(people, START, 2, [(at, who, "app.login", {"platform": "ios"}) for at, who in arrivals],
                       _around(*(at for at, _ in arrivals)), ticks, QUIET)
    if case == "zones off the hour":
        people = [_person(timezone=z) for z in ("Asia/Kolkata", "Asia/Kathmandu", "Australia/Eucla",
                                                 "Pacific/Chatham", "America/St_Johns")]
        return Example(people, START, 3, [], _ticks(START, START + timedelta(days=3), timedelta(minutes=45)),
                       ticks, DAILY)
    if case in ("birthday on 29 February, 2027", "birthday on 29 February, 2028"):
        year = int(case[-4:])
        start = datetime(year, 2, 27, tzinfo=UTC)
        people = [_person(birthday=date(1988, 2, 29), tier="diamond"),
                  _person(birthday=date(1988, 2, 29), timezone="America/Los_Angeles"),
                  _person(birthday=date(1992, 2, 29), timezone="Pacific/Kiritimati")]
        return Example(people, start, 4, [], _ticks(start, start + timedelta(days=4), timedelta(hours=1)), ticks)
    raise AssertionError(case)


CASES = ["login at the deadline", "branch on an update of the same minute", "re-entry after exit",
         "quiet hours across a tick", "zones off the hour", "birthday on 29 February, 2027",
         "birthday on 29 February, 2028"]


@pytest.mark.parametrize("ticks", [True, False], ids=["ticks", "runs"])
@pytest.mark.parametrize("case", CASES)
def test_an_edge_plans_alike_in_one_run_and_in_ticks(world: World, case: str, ticks: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slicing, "statistic", lambda _: None)  # hypothesis' statistics, outside a hypothesis test
    check(world, _example(case, ticks), monkeypatch)


def _twice(emit: Callable[..., Any]) -> Callable[..., Any]:
    """A webhook's retry: every event reported twice under its id."""
    def both(*args: Any, **kw: Any) -> Any:
        emit(*args, **kw)
        return emit(*args, **kw)
    return both


def _in_arrival_order(emit: Callable[..., Any]) -> Callable[..., Any]:
    """Events reported later than they happened: each is acted on at the clock of its arrival, the latest
    moment reported so far (the harness's clock stands at each event's own moment)."""
    latest: list[datetime] = []

    def arrive(*args: Any, occurred_at: datetime, **kw: Any) -> Any:
        latest[:] = [max([*latest, occurred_at])]
        with simulated_time(lambda: latest[0]):
            return emit(*args, occurred_at=occurred_at, **kw)
    return arrive


@pytest.mark.parametrize("ticks", [True, False], ids=["ticks", "runs"])
@pytest.mark.parametrize("disorder", ["reported twice", "reported out of order"])
def test_events_reported_twice_or_out_of_order_plan_alike(world: World, disorder: str, ticks: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slicing, "statistic", lambda _: None)
    hours: list[tuple[float, str, dict[str, Any]]] = [
        (1.0, "app.login", {"platform": "ios"}), (1.05, "survey.answered", {"survey": "nps", "nps": 3}),
        (1.07, "complaint.filed", {"category": "service", "severity": "high"}), (1.08, "complaint.resolved", {}),
        (5.0, "message.replied", {"text": "1"}), (5.01, "policy.renewed", {})]
    events = [(START + timedelta(hours=h), 0, kind, data) for h, kind, data in hours]
    if disorder == "reported out of order":
        events = [events[1], events[0], events[3], events[2], events[5], events[4]]  # same gaps, swapped within
        monkeypatch.setattr(slicing, "emit_event", _in_arrival_order(slicing.emit_event))
    else:
        monkeypatch.setattr(slicing, "emit_event", _twice(slicing.emit_event))
    cuts = [(START + timedelta(hours=h), WRITE) for h in (0.5, 1.1, 4.5, 5.1, 8)]
    check(world, Example([_person(), _person(tier="gold")], START, 2, events, cuts, ticks, REENTRY), monkeypatch)


@pytest.mark.parametrize(("year", "day"), [(2027, 28), (2028, 29)])
def test_a_birthday_on_29_february_is_greeted_once_at_nine_local(world: World, year: int, day: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same in one run as in ticks (above); here, what that one result is: 28 February in a common
    year, at 09:00 in each customer's own zone, once."""
    ex = _example(f"birthday on 29 February, {year}", ticks=True)
    world.use(ex, monkeypatch)
    with world.stores(None) as (url, _):
        slicing._fill(url, ex)
        touches = slicing._one_window(url, ex)["touches"]
    greeted = {key.split(":")[0]: due for key, (status, _, due, _) in touches.items()
               if ":birthday-care:" in key and status == "planned"}
    zones = {"1": "Asia/Shanghai", "2": "America/Los_Angeles", "3": "Pacific/Kiritimati"}
    assert {cid: (due.astimezone(ZoneInfo(zones[cid])).date(), due.astimezone(ZoneInfo(zones[cid])).hour)
            for cid, due in greeted.items()} == {cid: (date(year, 2, day), 9) for cid in zones}
