"""Dates and moments outside the years the product takes (``store.clock.out_of_range``) are refused
where people type them, and any moment it takes survives the planner's arithmetic.

An event stamped in year 1 went in through the API and then failed every later plan with an
OverflowError; the same years typed into explain, simulate or a console form gave a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.durations import LONGEST, parse_duration
from engine.language.moments import parse_local_moment, parse_utc_moment
from engine.planning.occurrences import as_anchor_date
from store.clock import FIRST_YEAR, LAST_YEAR, as_utc, out_of_range

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(timezones=st.none() | OFFSETS))
def test_a_typed_moment_is_taken_exactly_when_its_year_is_in_range(moment: datetime) -> None:
    text = moment.isoformat()
    taken = FIRST_YEAR <= moment.year <= LAST_YEAR
    assert (out_of_range(moment) is None) == taken
    for parse in (parse_utc_moment, lambda t: parse_local_moment(t, "Pacific/Kiritimati")):
        if taken:
            utc = parse(text)
            # The planner adds and subtracts durations of up to a century and a day's margin.
            assert as_utc(utc) + LONGEST + timedelta(days=2) > as_utc(utc) - LONGEST - timedelta(days=2)
        else:
            with pytest.raises(ValueError, match=f"is outside the years {FIRST_YEAR}–{LAST_YEAR}"):
                parse(text)


@given(st.dates())
def test_an_anchor_date_outside_the_years_has_no_occurrence(day: date) -> None:
    expected = day if FIRST_YEAR <= day.year <= LAST_YEAR else None
    assert as_anchor_date(day) == expected
    assert as_anchor_date(day.isoformat()) == expected  # a date attribute is free JSON text
    assert as_anchor_date(datetime.combine(day, datetime.min.time(), tzinfo=UTC)) == expected


def test_durations_end_at_a_century() -> None:
    assert parse_duration("36500d") == LONGEST
    assert parse_duration("-5200w") == -timedelta(weeks=5200)
    for text in ("36501d", "5215w", "99999999999999999999d", "876001h"):
        with pytest.raises(ValueError, match="longer than 100 years"):
            parse_duration(text)


@pytest.mark.parametrize("args", [
    ["explain", "C1", "--at", "9999-12-31T23:59+08:00"],
    ["explain", "C1", "--at", "0001-01-01T00:00"],
    ["simulate", "--from", "9999-12-30", "--to", "9999-12-31"],
    ["plan", "--at", "9999-12-31T23:59:59+08:00", "--dry-run"],
])
def test_the_cli_refuses_far_moments_with_a_message_not_a_traceback(args: list[str], db_url: str) -> None:
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2, result.output
    assert "is outside the years 1900–2199" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, OverflowError)


@pytest.mark.parametrize(("args", "words"), [
    (["event", "emit", "no.such", "--customer", "C1"], "unknown event type 'no.such'"),
    (["event", "emit", "complaint.filed", "--customer", "C1", "--data", '{"bogus": 1}'], "data.bogus is not a field"),
    (["event", "emit", "policy.premium_paid", "--customer", "C1", "--data",
      '{"policy_id": "P1", "amount": 1.0, "due_date": "0001-01-01"}'], "is outside the years"),
    (["event", "emit", "policy.premium_paid", "--customer", "C1", "--data",
      '{"policy_id": "P1", "amount": Infinity, "due_date": "2026-12-01"}'], "not a JSON number"),
    (["event", "emit", "complaint.filed", "--customer", "C1", "--data", '{"text": "\\ud800"}'], "surrogate"),
])
def test_the_cli_checks_an_event_as_the_api_does(args: list[str], words: str, db_url: str) -> None:
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split())
