"""Holiday dates from their own calendars, checked against an independent lunisolar calendar.

Production dates come from ``lunar-python`` (engine.language.festivals); the check is ``sxtwl``, a
separate C++ implementation installed only for tests. The literal dates are the Hong Kong
Observatory's published ones, for the years where a simpler source goes wrong.
"""

from __future__ import annotations

from datetime import date

import pytest
import sxtwl

from engine.language.catalogue import HOLIDAY_RULES, HOLIDAYS
from engine.language.festivals import festival_date, festivals_on, spring_festival_eve

YEARS = range(2000, 2101)
QINGMING = 7  # sxtwl numbers the solar terms from the winter solstice (0); 清明 is the 8th


def test_every_holiday_a_journey_can_name_has_a_rule() -> None:
    assert set(HOLIDAY_RULES) == set(HOLIDAYS)


@pytest.mark.parametrize("key", [k for k, rule in HOLIDAY_RULES.items() if rule.calendar == "lunar"])
def test_lunar_festivals_2000_to_2100_match_the_independent_calendar(key: str) -> None:
    rule = HOLIDAY_RULES[key]
    wrong = []
    for year in YEARS:
        day = festival_date(key, year)
        lunar = sxtwl.fromSolar(day.year, day.month, day.day)
        got = (lunar.getLunarYear(), lunar.getLunarMonth(), lunar.getLunarDay(), bool(lunar.isLunarLeap()))
        if got != (year, rule.month, rule.day, False):
            wrong.append((year, day.isoformat(), got))
    assert wrong == []


def test_qingming_2000_to_2100_is_the_day_of_the_solar_term() -> None:
    wrong = []
    for year in YEARS:
        day = festival_date("qingming", year)
        term = sxtwl.fromSolar(day.year, day.month, day.day)
        if not (term.hasJieQi() and term.getJieQi() == QINGMING):
            wrong.append((year, day.isoformat()))
    assert wrong == []


def test_fixed_date_holidays_by_date() -> None:
    for year in (2000, 2031, 2100):
        assert festival_date("new_year", year) == date(year, 1, 1)
        assert festival_date("labour_day", year) == date(year, 5, 1)
        assert festival_date("national_day", year) == date(year, 10, 1)


def test_published_dates_where_simpler_sources_go_wrong() -> None:
    # Mid-Autumn inside the National Day week, and on National Day itself.
    assert festival_date("mid_autumn", 2025) == date(2025, 10, 6)
    assert festival_date("mid_autumn", 2028) == date(2028, 10, 3)
    assert festival_date("mid_autumn", 2031) == date(2031, 10, 1)
    # A new moon close to midnight: a table-driven library puts this on 19 September.
    assert festival_date("mid_autumn", 2089) == date(2089, 9, 18)
    # 2100 is no leap year; the holidays package's rule of thumb gives 4 April.
    assert festival_date("qingming", 2100) == date(2100, 4, 5)
    # 2052 has a leap eighth month (闰八月十五 is 7 October): Mid-Autumn is in the ordinary one.
    assert festival_date("mid_autumn", 2052) == date(2052, 9, 7)
    assert festival_date("spring_festival", 2027) == date(2027, 2, 6)
    assert spring_festival_eve(2027) == date(2027, 2, 5)


def test_two_festivals_can_share_a_day() -> None:
    assert festivals_on(date(2031, 10, 1)) == ["mid_autumn", "national_day"]
    assert festivals_on(date(2028, 10, 3)) == ["mid_autumn"]
    assert festivals_on(date(2028, 10, 2)) == []
