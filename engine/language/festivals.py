"""The day each Chinese festival a journey may anchor on falls on, computed from its calendar.

``catalogue.HOLIDAY_RULES`` says which calendar defines each festival:

- **Gregorian**: New Year's Day (1 Jan), Labour Day (1 May), National Day (1 Oct).
- **Lunisolar**: Spring Festival (正月初一), Dragon Boat (五月初五), Mid-Autumn (八月十五). A leap
  month never holds a festival (闰八月十五 is not Mid-Autumn).
- **Solar term**: Qingming (清明) is the day the sun reaches 15° ecliptic longitude, 4-6 April.

Lunar months and solar terms come from ``lunar-python``, which computes new moons and the sun's
longitude astronomically in China Standard Time (UTC+8), the time the Chinese calendar is defined
in, so a new moon just before or after midnight lands on the right day (Mid-Autumn 2089 is
18 September). Its dates for 2000-2100 are checked against a second, independent implementation
in ``tests/planning/test_lunar_calendar.py``.

Dates never come from holiday *labels*: two festivals can share a day (Mid-Autumn and National
Day on 1 October 2031) or sit inside each other's days off (Mid-Autumn on 3 October 2028), and
each is still its own festival.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from lunar_python import Lunar

from engine.language.catalogue import HOLIDAY_RULES


def _lunar_to_gregorian(year: int, month: int, day: int) -> date:
    # lunar-python spells a leap month as a negative month; a positive one is the ordinary month.
    solar = Lunar.fromYmd(year, month, day).getSolar()
    return date(solar.getYear(), solar.getMonth(), solar.getDay())


@lru_cache(maxsize=2048)
def festival_date(key: str, year: int) -> date:
    """The day festival ``key`` (a ``catalogue.HOLIDAY_RULES`` key) falls on in Gregorian ``year``.

    Each festival falls exactly once in a Gregorian year: Spring Festival is always between
    21 January and 20 February, so lunar year ``year``'s festivals all lie in Gregorian ``year``.
    """
    rule = HOLIDAY_RULES[key]
    if rule.calendar == "gregorian":
        return date(year, rule.month, rule.day)
    if rule.calendar == "lunar":
        return _lunar_to_gregorian(year, rule.month, rule.day)
    # The lunar year's table runs from the winter solstice before it to the spring after it, so
    # the spring terms of lunar year ``year`` are those of Gregorian ``year``.
    term = Lunar.fromYmd(year, 1, 1).getJieQiTable()[rule.term]
    return date(term.getYear(), term.getMonth(), term.getDay())


def spring_festival_eve(year: int) -> date:
    """除夕, the last day of the lunar year ending in Gregorian ``year`` (a statutory day off since 2025)."""
    return festival_date("spring_festival", year) - timedelta(days=1)


def festivals_on(day: date) -> list[str]:
    """The festivals (``HOLIDAY_RULES`` keys) falling on ``day``; two can share one."""
    return [key for key in HOLIDAY_RULES if festival_date(key, day.year) == day]
