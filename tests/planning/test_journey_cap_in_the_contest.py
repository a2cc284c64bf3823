"""A journey's own cap, and a channel's, are decided when the touch is planned, before the marketing cap's
contest.

``high`` (priority 90) wants the customer every day at 10:00 but says ``cap: {count: 1, window: 7d}``;
``low`` (priority 10) every day at 11:00; the marketing cap allows one a day. Before, the planner knew
nothing of ``high``'s own cap: from the second day ``high``'s touch won the day's contest, ``low``'s was
dropped as pre-empted by it, and dispatch then dropped ``high``'s for its journey cap: the customer got
nothing, though under the files ``low`` goes out. And ``journeys simulate`` counted a ``high`` touch a day
that never goes out. Differential: the service's ticks and dispatch (a real HTTP provider on loopback, on a
SQLite file and on PostgreSQL, one planning process and two) send what simulate says beforehand. The same for
a channel's cap (app push: 1 per 3 days, config/delivery.yaml).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from engine.planning.planner import plan_ahead
from engine.planning.simulate import simulate
from store.clock import simulated_time
from store.db import make_engine
from tests.dispatch_support import service_sends
from tests.journey_support import journeys_folder, sms_and_wechat_customer
from tests.review_support import set_setting

DAILY = ("id: {id}\nname: Daily {id}\ncategory: marketing\npriority: {priority}\n{cap}"
         'entry: {{schedule: {{cron: "0 {hour} * * *"}}}}\nreentry: {{allowed: true}}\nsteps:\n'
         "  - {{id: s0, send: {{channels: [sms], template: silver_weekly_push}}}}\n")
START = datetime(2027, 3, 1, 0, 0, tzinfo=UTC)  # Monday 08:00 in Shanghai
UNTIL = datetime(2027, 3, 4, 8, 0, tzinfo=UTC)  # Thursday 16:00


def _book(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, high_cap: str = "",
          high_channels: str = "[sms]") -> None:
    """``high`` (with ``high_cap``, on ``high_channels``) and ``low``, one marketing touch a day, customer 1."""
    journeys = journeys_folder(tmp_path, monkeypatch)
    delivery = tmp_path / "config" / "delivery.yaml"
    set_setting(delivery, "marketing_cap", "1")
    set_setting(delivery, "marketing_cap_window", '"1d"')
    (journeys / "high.yaml").write_text(DAILY.format(id="high", priority=90, hour=10, cap=high_cap)
                                        .replace("[sms]", high_channels), encoding="utf-8")
    (journeys / "low.yaml").write_text(DAILY.format(id="low", priority=10, hour=11, cap=""), encoding="utf-8")
    engine = make_engine(url)
    sms_and_wechat_customer(engine)
    with engine.begin() as conn:  # and on the app, for app push
        conn.execute(text("UPDATE customer SET push_registration_id = 'reg1', consent_push = :yes"), {"yes": True})
    engine.dispose()


def _sent_and_said(url: str, channels: tuple[str, ...], planning: dict[str, int]) -> tuple[list[str], Counter[Any]]:
    """The keys the service sends, and simulate's touches by local day and journey beforehand."""
    with simulated_time(lambda: START):
        forecast = simulate(START, UNTIL, url=url)
        plan_ahead(START, start=START, url=url)
    sent = sorted(service_sends(url, START, UNTIL, channels=channels, **planning))
    return sent, Counter({(day, journey): n for (day, journey, _), n in forecast.touches.items()})


def _by_day(keys: list[str]) -> Counter[tuple[date, str]]:
    """Touch keys (``1:<journey>:s0:<local moment>``) counted by local day and journey."""
    return Counter((date.fromisoformat(key.split(":", 3)[3][:10]), key.split(":")[1]) for key in keys)


@pytest.mark.parametrize("planning", [{}, {"workers": 2, "chunk": 1}], ids=["one process", "two processes"])
def test_a_touch_its_own_journey_caps_takes_no_place_from_another(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planning: dict[str, int]) -> None:
    url = migrated_any_db
    _book(url, tmp_path, monkeypatch, high_cap="cap: {count: 1, window: 7d}\n")
    sent, said = _sent_and_said(url, ("sms",), planning)
    assert sent == ["1:high:s0:2027-03-01T10:00", "1:low:s0:2027-03-02T11:00", "1:low:s0:2027-03-03T11:00",
                    "1:low:s0:2027-03-04T11:00"]
    # What simulate said beforehand, touches on the local day they go out (Thursday's up to 16:00).
    assert said == _by_day(sent)


@pytest.mark.parametrize("planning", [{}, {"workers": 2, "chunk": 1}], ids=["one process", "two processes"])
def test_a_push_its_channel_caps_takes_no_place_from_another(
        migrated_any_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planning: dict[str, int]) -> None:
    """``high`` by app push (1 per 3 days): from Tuesday ``low``'s SMS goes out (on Thursday, when push would
    have room again, ``high``'s 10:00 comes 23 hours after Wednesday's SMS, inside the cap's rolling day)."""
    url = migrated_any_db
    _book(url, tmp_path, monkeypatch, high_channels="[push]")
    sent, said = _sent_and_said(url, ("sms", "push"), planning)
    assert sent == ["1:high:s0:2027-03-01T10:00", "1:low:s0:2027-03-02T11:00", "1:low:s0:2027-03-03T11:00",
                    "1:low:s0:2027-03-04T11:00"]
    assert said == _by_day(sent)

def test_the_planners_drop_is_worded_apart_from_dispatchs() -> None:
    """The console words a drop when planned without "when sending", which stays dispatch's."""
    from console.i18n import Translator

    planned = "journey_cap: journey high cap 1 per 7d reached"
    sending = f"{planned} when sending"
    assert [Translator(loc).touch_reason(planned) for loc in ("zh-CN", "en")] == [
        "已达旅程「high」的上限（每7天1条）", "Cap of journey “high”, 1 per 7 days, reached"]
    assert Translator("zh-CN").touch_reason(sending) == "发送时已达旅程「high」的上限（每7天1条）"
