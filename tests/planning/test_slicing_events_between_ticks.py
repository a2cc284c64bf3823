"""One result however time is sliced (``test_slicing_invariance``), for an event that arrives between
two runs after an entry's moment, when it or a step due before it changes what that entry reads.

A customer's scheduled or dated entry is due at 10:00 (Shanghai), its audience or its date reading an
attribute that an update step sets at 10:01 (a scheduled journey's) or at 10:03 (the login's own
journey). The login arrives at 10:03, between runs at 09:55 and 10:05. At 10:00 the customer did not
have the attribute: no entry, in one run over the day as in runs cut around the login, whether its
run or the next one plans the entry (the next one must not judge it again with what changed after).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.planning import test_slicing_invariance as slicing
from tests.planning.test_slicing_invariance import WRITE, Example, World, check
from tests.planning.test_slicing_invariance import world as world  # the module's fixture

START = datetime(2027, 3, 1, tzinfo=UTC)  # 08:00 in Shanghai

FLAGGED = ("id: gen-0\nname: Flagged\ncategory: service\n"
           "audience: {when: {field: customer.attributes.flag_a, op: eq, value: true}}\n"
           'entry: {schedule: {cron: "0 10 * * *"}}\n'
           "steps:\n  - {id: s0, send: {channels: [sms], template: nps_survey}}\n")
DATED = ("id: gen-0\nname: Dated\ncategory: service\n"
         'entry: {date: {anchor: customer.attributes.due, at: "10:00"}}\n'
         "steps:\n  - {id: s0, send: {channels: [sms], template: nps_survey}}\n")
LOGIN = ("id: gen-2\nname: Login\ncategory: service\nentry: {event: {type: app.login}}\n"
         "steps:\n  - {id: s0, send: {channels: [sms], template: nps_survey}}\n")


def _setter(entry: str, field: str, value: str) -> str:
    return (f"id: gen-1\nname: Setter\ncategory: service\nentry: {entry}\n"
            f"steps:\n  - {{id: s0, update: {{field: customer.attributes.{field}, value: {value}}}}}\n")


CASES = {
    "a scheduled update reads into an audience": [
        FLAGGED, _setter('{schedule: {cron: "1 10 * * *"}}', "flag_a", "true"), LOGIN],
    "the login's update reads into an audience": [FLAGGED, _setter("{event: {type: app.login}}", "flag_a", "true")],
    "the login's update sets the date": [DATED, _setter("{event: {type: app.login}}", "due", '"2027-03-01"')],
}


@pytest.mark.parametrize("ticks", [True, False], ids=["ticks", "runs"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_event_between_runs_leaves_an_entry_before_it_as_it_was(
        world: World, case: str, ticks: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    person = {"tier": "silver", "timezone": "Asia/Shanghai", "consent_sms": True, "consent_wechat": True,
              "consent_email": True, "birthday": date(1980, 3, 4), "preference": "travel", "line": "motor",
              "expiry_days": 31}
    login = (START + timedelta(hours=2, minutes=3), 0, "app.login", {"platform": "ios"})
    cuts = [(START + timedelta(hours=1, minutes=55), WRITE), (START + timedelta(hours=2, minutes=5), WRITE)]
    monkeypatch.setattr(slicing, "statistic", lambda _: None)  # hypothesis' statistics, outside a hypothesis test
    check(world, Example([person], START, 1, [login], cuts, ticks, CASES[case]), monkeypatch)


WAITS_FOR_FLAGGED_LOGIN = {
    "wait_for": ('entry: {schedule: {cron: "0 9 1 3 *"}}\nsteps:\n'
                 "  - {id: s0, wait_for: {event: app.login, when: {field: customer.attributes.flag_a, op: eq, "
                 "value: true}, timeout: 3d, on_event: s1, on_timeout: s2}}\n"
                 "  - {id: s1, send: {channels: [sms], template: nps_survey}}\n  - {id: s2, exit: {reason: timed}}\n"),
    "goal": ('entry: {schedule: {cron: "0 9 1 3 *"}}\n'
             "goal: {event: app.login, when: {field: customer.attributes.flag_a, op: eq, value: true}}\nsteps:\n"
             "  - {id: s0, wait: 3d}\n  - {id: s1, send: {channels: [sms], template: nps_survey}}\n"),
}


@pytest.mark.parametrize("login_hours", [2, 10], ids=["login before the update", "login after it"])
@pytest.mark.parametrize("kind", sorted(WAITS_FOR_FLAGGED_LOGIN))
def test_an_awaited_event_is_judged_with_the_attributes_of_its_moment(
        world: World, kind: str, login_hours: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting from 09:00 for a login while ``flag_a`` holds, set at 12:00 (Shanghai): a login at 10:00
    does not count, one at 18:00 does, in one run as in runs cut at 14:00 (which must not judge the
    10:00 login again with the flag set since, nor the 18:00 one with the flag as it was at 09:00)."""
    person = {"tier": "silver", "timezone": "Asia/Shanghai", "consent_sms": True, "consent_wechat": True,
              "consent_email": True, "birthday": date(1980, 3, 4), "preference": "travel", "line": "motor",
              "expiry_days": 31}
    journeys = ["id: gen-0\nname: Waits\ncategory: service\n" + WAITS_FOR_FLAGGED_LOGIN[kind],
                _setter('{schedule: {cron: "0 12 1 3 *"}}', "flag_a", "true")]
    login = (START + timedelta(hours=login_hours), 0, "app.login", {"platform": "ios"})
    monkeypatch.setattr(slicing, "statistic", lambda _: None)
    for ticks in (True, False):
        check(world, Example([person], START, 5, [login], [(START + timedelta(hours=6), WRITE)], ticks, journeys),
              monkeypatch)
