"""The Chinese console words delivery-rule reasons, durations and offsets, never the engine's English or
a raw code. Before, the explain page showed "quiet hours 21:00-08:00 (Asia/Shanghai): moved from
2026-11-23 22:00", "marketing_cap: marketing cap 2 per 7d reached" and "pre_empted: pre-empted by
renewal-reminder" as written (only "no channel" was in Chinese, matched by its English text); the journey
pages showed entries as "policy.expiry_date -30d 10:00" and a wait's timeout as "1d12h".

Reasons are worded from the rule's code and parameters (``engine.planning.explain.reason_code``); the
shapes it reads are held here to the text the delivery rules themselves write (differential, not copied).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from console.i18n import Translator
from engine.language.settings_model import DeliveryConfig
from engine.planning import delivery_rules
from engine.planning.delivery_rules import Reach, StoredTouch, Wanted, decide, stored_reason
from engine.planning.explain import reason_code
from engine.planning.occurrences import place
from engine.sending import cap_check
from store.db import session_scope
from store.models import Touch
from tests.console.conftest import Seed, login
from tests.console.test_form_errors import set_locale

LATIN = re.compile(r"[A-Za-z_]{2,}|\d+[wdhm]\b|\d{4}-\d{2}-\d{2}")
SH = "Asia/Shanghai"


def _wanted(planned: datetime, journey: str = "j", priority: int = 50, channels: tuple[str, ...] = ("wechat", "sms"),
            occurrence: str = "o") -> Wanted:
    return Wanted(1, journey, "v1", "s", occurrence, "marketing", False, priority, list(channels), "msg", planned)


def _reach(consent: bool = True) -> Reach:
    return Reach(SH, {"sms": consent, "wechat": consent, "email": consent},
                 {"sms": True, "wechat": True, "email": True})


def planner_reasons() -> list[tuple[str, str]]:
    """(rule, reason) of each drop or move the planner writes, as ``decide`` writes it now."""
    config = DeliveryConfig()
    out: list[tuple[str, str]] = []
    day = place(datetime(2027, 3, 1, 10, 0), SH)
    [none] = decide([_wanted(day)], _reach(consent=False), config)[0]
    late = place(datetime(2027, 3, 1, 22, 15), SH)
    [quiet] = decide([_wanted(late)], _reach(), config)[0]
    contest = decide([_wanted(day, "low", 10), _wanted(day, "high", 90), _wanted(day + timedelta(hours=1), "mid")],
                     _reach(), config)[0]
    gone = [StoredTouch(f"1:old:s:{n}", "old", "s", "marketing", "sent", None, due, due, "sms", 50)
            for n, due in enumerate((place(datetime(2027, 3, 1, 10), SH), place(datetime(2027, 3, 3, 10), SH)))]
    [capped] = decide([_wanted(place(datetime(2027, 3, 5, 10), SH))], _reach(), config, gone)[0]
    for d in (none, quiet, *contest, capped):
        if d.dropped_by or d.moved_by:
            out.append((d.dropped_by or d.moved_by or "", d.reason))
            # As explain reads a stored touch: the rule's code, then its words.
            out.append((d.dropped_by or d.moved_by or "", stored_reason(d.dropped_by or d.moved_by, d.reason)))
    assert {r for r, _ in out} == {delivery_rules.DROP_NO_CHANNEL, delivery_rules.MOVED_QUIET,
                                   delivery_rules.DROP_PREEMPTED, delivery_rules.DROP_CAP}
    return out


def sending_reasons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(rule, stored reason) of each cap the sender applies, as ``engine.sending.cap_check`` words it now."""
    said: list[str] = []

    def record(session: Any, candidates: Any, batch_ids: Any, cap: int, window: Any, where: Any,
               reason: str) -> dict[int, str]:
        said.append(reason)
        return {}

    monkeypatch.setattr(cap_check, "_over", record)
    cap_check.over_cap(None, [], set(), 3, timedelta(days=7))  # type: ignore[arg-type]
    cap_check.over_limits(None, [], set(), {"sms": (2, timedelta(days=1))},  # type: ignore[arg-type]
                          {"renewal-reminder": (1, timedelta(days=1, hours=12))})
    return [(text.split(":", 1)[0], text) for text in said]


def test_every_reason_the_rules_write_has_a_code_and_chinese_words(monkeypatch: pytest.MonkeyPatch) -> None:
    zh, en = Translator("zh-CN"), Translator("en")
    reasons = planner_reasons() + sending_reasons(monkeypatch)
    assert {r for r, _ in reasons} >= {"channel_cap", "journey_cap", "marketing_cap"}
    for rule, text in reasons:
        code, params = reason_code(rule, text)
        assert code == rule, (rule, text)
        shown = zh.delivery_reason(code, params, text, journey_name=lambda j: "续保提醒")
        assert shown != text and not LATIN.search(shown), (text, shown)
        assert en.delivery_reason(code, params, text, journey_name=lambda j: j) != text


def test_a_reason_of_an_unknown_shape_keeps_the_engines_words() -> None:
    assert reason_code("marketing_cap", "something else") == (None, {})
    assert reason_code(None, "customer removed") == (None, {})
    assert Translator("zh-CN").delivery_reason(None, {}, "customer removed") == "customer removed"


@pytest.mark.parametrize(("words", "text", "zh", "en"), [
    ("duration", "1d12h", "1天12小时", "1 day 12 hours"),
    ("duration", "30d", "30天", "30 days"),
    ("duration", "2w", "2周", "2 weeks"),
    ("duration", "90m", "90分钟", "90 minutes"),
    ("duration", "6h", "6小时", "6 hours"),
    ("offset", "-30d", "提前30天", "30 days before"),
    ("offset", "+30d", "30天后", "30 days after"),
    ("offset", "30d", "30天后", "30 days after"),
    ("offset", "0d", "当天", "on the day"),
    ("offset", "-1d12h", "提前1天12小时", "1 day 12 hours before"),
])
def test_a_duration_or_an_offset_is_shown_in_words(words: str, text: str, zh: str, en: str) -> None:
    """``words`` names the translator's method: a duration (a wait, a timeout) or an offset from a date."""
    assert (getattr(Translator("zh-CN"), words)(text), getattr(Translator("en"), words)(text)) == (zh, en)


def test_an_anchored_offset_reads_from_its_date() -> None:
    zh = Translator("zh-CN")
    assert zh.date_entry("policy.expiry_date", "-30d", "10:00") == "保单到期日前30天 10:00"
    assert zh.date_entry("claim.settled_at", "30d", "10:00") == "理赔结案后30天 10:00"


def _chinese_ops(client: TestClient, db_url: str) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")


def _touch(customer_id: int, n: int, due: datetime, status: str, reason: str, planned: datetime | None = None) -> Touch:
    return Touch(key=f"why:{n}", customer_id=customer_id, journey_id="renewal-reminder", journey_version="v1",
                 step_id="s", occurrence=str(n), category="marketing", channel="sms", template="t",
                 planned_for=planned or due, due_at=due, status=status, error_reason=reason, created_at=due)


def test_the_explain_page_words_every_stored_reason_in_chinese(client: TestClient, db_url: str, seed: Seed,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    due = seed.now + timedelta(hours=3)
    reasons = [text for _, text in sending_reasons(monkeypatch)] + [
        stored_reason("marketing_cap", "marketing cap 2 per 7d reached"),
        stored_reason("pre_empted", "pre-empted by birthday-care"),
        stored_reason("no_channel", "no consented, reachable channel among sms, wechat"),
    ]
    with session_scope(db_url) as s:
        for n, reason in enumerate(reasons):
            s.add(_touch(seed.customers["C1"], n, due, "dropped", reason))
    _chinese_ops(client, db_url)
    page = client.get("/ops/explain", params={"customer": "C1", "at": seed.now.strftime("%Y-%m-%dT%H:%M")}).text
    touches = page.split('data-testid="explain-touches"', 1)[1].split("</table>", 1)[0]
    for english in ("marketing cap", "reached", "pre-empted", "no consented", " per 7d", "1d12h"):
        assert english not in touches, english
    shown = re.findall(r'<small data-k="reason" data-code="([a-z_]*)">([^<]*)</small>', page)
    assert len(shown) == len(reasons), page
    assert {code for code, _ in shown} == {"marketing_cap", "channel_cap", "journey_cap", "pre_empted", "no_channel"}
    for _, words in shown:
        assert not LATIN.search(words), words
    text = " ".join(words for _, words in shown)
    assert "每7天3条" in text and "每1天12小时1条" in text and "发送时已达短信上限" in text
    assert "被优先级更高的旅程「生日关怀」取代" in text and "短信、微信中没有已同意且可达的渠道" in text


def test_the_journey_pages_word_entries_and_timeouts_in_chinese(client: TestClient, db_url: str) -> None:
    from engine.language.journey_registry import validated_report

    _chinese_ops(client, db_url)
    listing = client.get("/ops/journeys").text
    dated = [j.journey for j in validated_report().journeys if j.journey.entry.date is not None]
    assert dated
    entries = re.findall(r'data-k="entry-date" title="([^"]*)">([^<]*)<', listing)
    assert len(entries) == len(dated)
    for code, words in entries:
        assert words and not LATIN.search(words), (code, words)
    assert ("policy.expiry_date -30d 10:00", "保单到期日前30天 10:00") in entries
    assert ("claim.settled_at 30d 10:00", "理赔结案后30天 10:00") in entries
    waits = [j.journey for j in validated_report().journeys
             if any(s.wait_for is not None for s in j.journey.steps)]
    assert waits
    journey = waits[0]
    page = client.get(f"/ops/journeys/{journey.id}").text
    [wait] = [s.wait_for for s in journey.steps if s.wait_for is not None][:1]
    labels = re.findall(r'class="edge-label">([^<]*)<title>', page)
    timeout = Translator("zh-CN").duration(wait.timeout)
    assert any(label.strip() == f"超时 {timeout}" for label in labels), labels
    assert not any(re.search(r"\b\d+[wdhm]\b", label) for label in labels), labels
