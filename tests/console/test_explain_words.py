"""The ops explain page words a journey's next firing and a dropped touch's reason in the reader's
language. Differential with the engine: every date entry of the shipped journeys (and every offset a
journey may write, every year or once, every anchor and holiday) is worded by
``engine.planning.explain`` itself, and the Chinese page shows none of it in English or as a raw code
or ISO time. Before, "policy.premium_due_date -7d at 10:00", "30 days after a claim settles" and
"new_year-2027 2026-12-29T10:00:00+08:00" were shown as written."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from console.i18n import Translator
from console.labels import ANCHORS
from engine.language.catalogue import HOLIDAYS
from engine.language.journey_model import Journey
from engine.language.journey_registry import validated_report
from engine.planning.explain import _next_fire, reason_code
from store.models import CHANNELS

AT = datetime.fromisoformat("2026-12-01T04:00:00+00:00")
LATIN = re.compile(r"[A-Za-z_]{2,}|\d{4}-\d{2}-\d{2}T")


def shipped_date_journeys() -> list[Journey]:
    return [j.journey for j in validated_report().journeys
            if j.journey.entry.date is not None and j.journey.entry.date.anchor not in ("customer.birthday",
                                                                                       "policy.expiry_date")]


def variants(journey: Journey) -> list[Journey]:
    """The journey with its entry moved over every anchor, offset sign and recurrence explain words."""
    entry = journey.entry.date
    assert entry is not None
    out = []
    anchors = ["holiday"] if entry.anchor == "holiday" else [a for a in ANCHORS if a != "customer.birthday"]
    for anchor in anchors:
        for offset in ("-7d", "0d", "30d", "2w"):
            for every in ((None,) if anchor in ("claim.settled_at", "holiday") else (None, "year")):
                if anchor == "policy.expiry_date" and every is None:
                    continue  # read from the store (a moment), not worded
                changed = entry.model_copy(update={"anchor": anchor, "offset": offset, "every": every})
                out.append(journey.model_copy(update={"entry": journey.entry.model_copy(update={"date": changed})}))
    return out


def test_the_shipped_journeys_have_date_entries_to_check() -> None:
    anchors = {j.entry.date.anchor for j in shipped_date_journeys() if j.entry.date}
    assert {"holiday", "claim.settled_at", "policy.premium_due_date", "policy.start_date"} <= anchors


@pytest.mark.parametrize("journey", shipped_date_journeys(), ids=lambda j: j.id)
def test_every_next_firing_explain_words_is_shown_in_chinese(journey: Journey) -> None:
    zh, en = Translator("zh-CN"), Translator("en")
    for variant in variants(journey):
        text, _ = _next_fire(None, variant, 0, {}, "Asia/Shanghai", AT)  # type: ignore[arg-type]
        assert text
        shown = zh.firing(text)
        assert not LATIN.search(shown), (text, shown)
        assert en.firing(text) and "_" not in en.firing(text), text


def test_a_reason_naming_channels_is_shown_in_chinese() -> None:
    zh = Translator("zh-CN")
    for n in range(1, len(CHANNELS) + 1):
        text = f"no consented, reachable channel among {', '.join(CHANNELS[:n])}"
        shown = zh.delivery_reason(*reason_code("no_channel", text), text)
        assert not LATIN.search(shown.replace("App", "")), shown  # the app, named so in Chinese too


def test_the_holiday_words_cover_the_engines_holidays() -> None:
    zh = Translator("zh-CN")
    for key in HOLIDAYS:
        assert not LATIN.search(zh.label("holiday", key)), key


