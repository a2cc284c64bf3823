"""Time zones are shown in words on every page: where the zone's clocks are (中国（上海）时间 on the Chinese
pages, China (Shanghai) Time on the English), or, for a zone of no place, its offset. Before, the report, the
journey pages and explain showed the IANA name (``Asia/Shanghai``) on the Chinese pages."""

from __future__ import annotations

import re
import zoneinfo

import pytest

from console.i18n import SUPPORTED, Translator

ZONES = sorted(z for z in zoneinfo.available_timezones() if z != "Factory")


@pytest.mark.parametrize("locale", sorted(SUPPORTED))
def test_every_zone_reads_as_words_not_as_its_name(locale: str) -> None:
    t = Translator(locale)
    for name in ZONES:
        shown = t.time_zone(name)
        assert shown and "/" not in shown and "_" not in shown, (locale, name, shown)
        if locale == "zh-CN":
            # Chinese words, or an offset such as GMT-05:00: no Latin place name left untranslated.
            assert re.fullmatch(r"GMT(?:[+-]\d\d:\d\d)?", shown) or not re.search(r"[A-Za-z]{4,}", shown), (name, shown)


def test_the_programme_zone_and_zones_of_no_place() -> None:
    zh, en = Translator("zh-CN"), Translator("en")
    assert zh.time_zone("Asia/Shanghai") == "中国（上海）时间"
    assert en.time_zone("Asia/Shanghai") == "China (Shanghai) Time"
    # Etc/GMT+5 is five hours behind Greenwich: its name's sign is the other way round, the words are not.
    assert zh.time_zone("Etc/GMT+5") == en.time_zone("Etc/GMT+5") == "GMT-05:00"
    assert zh.time_zone("UTC") == "GMT+00:00"


@pytest.mark.parametrize("written", ["", "Mars/Olympus", "../etc"])
def test_a_name_that_is_no_zone_is_shown_as_written(written: str) -> None:
    assert Translator("zh-CN").time_zone(written) == written
