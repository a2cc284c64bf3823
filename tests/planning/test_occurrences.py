"""Due times in the customer's local zone: cron cadences, date anchors, 29 Feb, lunar holidays,
holiday re-entry per occurrence and moving a fire off a day off."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.journey_model import DateEntry, Reentry
from engine.planning.anchored_entrants import _may_fire, _month_day
from engine.planning.occurrences import (
    NonWorkingDay,
    anchor_fire,
    anchored_fires,
    anniversary_in,
    as_anchor_date,
    birth_md_candidates,
    birthday_fires,
    birthday_in,
    cron_fires,
    holiday_date,
    holiday_fires,
    next_cron_fire,
)
from engine.planning.planner import plan
from store.db import get_engine
from store.models import Enrollment, Policy
from tests.journey_support import journey, send, steps
from tests.plan_support import Book, send_journey, utc

ROOT = Path(__file__).resolve().parents[2]

SH = "Asia/Shanghai"
LA = "America/Los_Angeles"


def test_weekly_monday_ten_in_shanghai() -> None:
    fires = cron_fires("0 10 * * MON", SH, utc(2027, 3, 1), utc(2027, 3, 15, 12))
    assert fires == (("2027-03-01T10:00", utc(2027, 3, 1, 2)), ("2027-03-08T10:00", utc(2027, 3, 8, 2)),
                     ("2027-03-15T10:00", utc(2027, 3, 15, 2)))


def test_weekly_in_los_angeles_across_dst_start() -> None:
    # DST starts Sunday 2027-03-14: 10:00 PST is 18:00 UTC, 10:00 PDT is 17:00 UTC.
    fires = cron_fires("0 10 * * MON", LA, utc(2027, 3, 7), utc(2027, 3, 16))
    assert [due for _, due in fires] == [utc(2027, 3, 8, 18), utc(2027, 3, 15, 17)]


def test_window_is_open_at_start_and_closed_at_end() -> None:
    assert cron_fires("0 10 * * MON", SH, utc(2027, 3, 1, 2), utc(2027, 3, 8, 2)) == (
        ("2027-03-08T10:00", utc(2027, 3, 8, 2)),
    )


def test_monthly_on_the_last_day_and_on_the_31st() -> None:
    last = cron_fires("0 10 L * *", SH, utc(2027, 1, 1), utc(2027, 4, 1))
    assert [label for label, _ in last] == ["2027-01-31T10:00", "2027-02-28T10:00", "2027-03-31T10:00"]
    # "on the 31st" skips the months that have no 31st.
    on_31 = cron_fires("0 10 31 * *", SH, utc(2027, 1, 1), utc(2027, 6, 1))
    assert [label for label, _ in on_31] == ["2027-01-31T10:00", "2027-03-31T10:00", "2027-05-31T10:00"]


def test_quarterly_and_yearly() -> None:
    quarterly = cron_fires("0 10 1 1,4,7,10 *", SH, utc(2027, 1, 1), utc(2028, 1, 1))
    assert [label for label, _ in quarterly] == ["2027-01-01T10:00", "2027-04-01T10:00", "2027-07-01T10:00",
                                                 "2027-10-01T10:00"]
    assert next_cron_fire("0 9 15 3 *", SH, utc(2027, 3, 15, 1)) == ("2028-03-15T09:00", utc(2028, 3, 15, 1))


def test_29_february_birthday_is_kept_on_28_february_in_a_non_leap_year() -> None:
    assert birthday_in(date(1992, 2, 29), 2027) == date(2027, 2, 28)
    assert birthday_in(date(1992, 2, 29), 2028) == date(2028, 2, 29)
    fires = birthday_fires(date(1992, 2, 29), "09:00", "0d", SH, utc(2027, 2, 27), utc(2027, 3, 2))
    assert fires == [("birthday-2027", utc(2027, 2, 28, 1))]
    # The SQL pre-selection asks for birth_md 229 on 28 Feb of a non-leap year only.
    assert 229 in birth_md_candidates(utc(2027, 2, 27, 12), utc(2027, 2, 28, 12), "0d")
    assert 229 not in birth_md_candidates(utc(2028, 2, 20), utc(2028, 2, 25), "0d")


def test_birthday_in_los_angeles_with_offset() -> None:
    # One day before, at 10:00 local; 2027-11-07 is the day DST ends in Los Angeles.
    fires = birthday_fires(date(1980, 11, 8), "10:00", "-1d", LA, utc(2027, 11, 1), utc(2027, 11, 10))
    assert fires == [("birthday-2027", utc(2027, 11, 7, 18))]


def test_policy_expiry_minus_30_days_over_a_month_end() -> None:
    assert anchor_fire(date(2027, 3, 30), "10:00", "-30d", SH) == utc(2027, 2, 28, 2)
    assert anchor_fire(date(2027, 3, 31), "10:00", "-30d", LA) == utc(2027, 3, 1, 18)


def test_spring_festival_and_other_lunar_holidays() -> None:
    assert holiday_date("spring_festival", 2027) == date(2027, 2, 6)
    assert holiday_date("spring_festival", 2026) == date(2026, 2, 17)
    assert holiday_date("dragon_boat", 2027) == date(2027, 6, 9)
    assert holiday_date("mid_autumn", 2026) == date(2026, 9, 25)
    fires = holiday_fires(["spring_festival", "mid_autumn"], "09:00", "-1d", SH, utc(2027, 1, 1), utc(2027, 12, 31))
    assert fires == [("spring_festival-2027", utc(2027, 2, 5, 1)), ("mid_autumn-2027", utc(2027, 9, 14, 1))]


def test_mid_autumn_inside_or_on_national_day_is_still_found() -> None:
    # The holidays package names the shared day "Mid-Autumn Festival; National Day"; matching
    # labels lost Mid-Autumn in those years and moved National Day 2031 to 2 October.
    assert holiday_date("mid_autumn", 2028) == date(2028, 10, 3)
    assert holiday_date("mid_autumn", 2031) == date(2031, 10, 1)
    assert holiday_date("national_day", 2031) == date(2031, 10, 1)
    assert holiday_date("mid_autumn", 2025) == date(2025, 10, 6)


def test_a_shared_day_fires_both_holidays() -> None:
    fires = holiday_fires(["mid_autumn", "national_day"], "10:00", "-3d", SH, utc(2031, 9, 1), utc(2031, 10, 31))
    assert fires == [("mid_autumn-2031", utc(2031, 9, 28, 2)), ("national_day-2031", utc(2031, 9, 28, 2))]
    fires = holiday_fires(["mid_autumn", "national_day"], "10:00", "-3d", SH, utc(2028, 9, 1), utc(2028, 10, 31))
    assert fires == [("national_day-2028", utc(2028, 9, 28, 2)), ("mid_autumn-2028", utc(2028, 9, 30, 2))]


# --- on_non_working_day: next_working_day -----------------------------------------------------------


def test_a_fire_on_a_day_off_moves_to_the_next_working_day() -> None:
    # 2026 (the chinese-calendar package's notice): 1-7 October off, Saturday 10 October worked.
    assert anchor_fire(date(2026, 10, 3), "10:00", "0d", SH, "next_working_day") == utc(2026, 10, 8, 2)
    assert anchor_fire(date(2026, 10, 3), "10:00", "0d", SH) == utc(2026, 10, 3, 2)
    # A make-up working day is a working day; a plain Saturday is not.
    assert anchor_fire(date(2026, 10, 10), "10:00", "0d", SH, "next_working_day") == utc(2026, 10, 10, 2)
    assert anchor_fire(date(2026, 10, 17), "10:00", "0d", SH, "next_working_day") == utc(2026, 10, 19, 2)
    # The offset lands first, then the move: expiry 2 Nov - 30d is 3 Oct, a day off.
    assert anchor_fire(date(2026, 11, 2), "10:00", "-30d", LA, "next_working_day") == utc(2026, 10, 8, 17)


def test_a_fire_moved_into_the_window_from_before_it_is_found() -> None:
    # A 2 October birthday greets on 8 October; the window holding 8 October must ask SQL for 1002.
    start, end = utc(2026, 10, 7, 12), utc(2026, 10, 8, 12)
    assert 1002 in birth_md_candidates(start, end, "0d", "next_working_day")
    assert 1002 not in birth_md_candidates(start, end, "0d")
    assert birthday_fires(date(1990, 10, 2), "10:00", "0d", SH, start, end, "next_working_day") == [
        ("birthday-2026", utc(2026, 10, 8, 2))]
    assert birthday_fires(date(1990, 10, 2), "10:00", "0d", SH, utc(2026, 10, 1), utc(2026, 10, 7, 12),
                          "next_working_day") == []


def test_the_work_calendar_file_decides_a_year_it_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "work_calendar.yaml").write_text(
        "years:\n  2027:\n    holidays:\n      - {name: company_day, from: 2027-03-03, to: 2027-03-05}\n"
        "    working_days: [2027-03-06]\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    assert anchor_fire(date(2027, 3, 3), "10:00", "0d", SH, "next_working_day") == utc(2027, 3, 6, 2)
    # The listed year replaces the statutory rule: Spring Festival 2027 (6 February) is worked here.
    assert anchor_fire(date(2027, 2, 8), "10:00", "0d", SH, "next_working_day") == utc(2027, 2, 8, 2)


def test_planner_moves_a_policy_reminder_off_the_national_day_week(book: Book) -> None:
    book.journey("renewal", send_journey(
        "renewal", "Renewal",
        '{date: {anchor: policy.expiry_date, offset: -30d, at: "10:00", on_non_working_day: next_working_day}}',
        step="remind", channels="[wechat]"))
    cid = book.policy_holder("motor", 1000.0, start=date(2025, 11, 2), expiry=date(2026, 11, 2))
    plan(utc(2026, 10, 7), utc(2026, 10, 1), url=book.url)
    assert book.touches() == []
    plan(utc(2026, 10, 9), utc(2026, 10, 7), url=book.url)
    assert [(t.key, t.due_at) for t in book.touches()] == [(f"{cid}:renewal:remind:policy-1-2026-11-02",
                                                          utc(2026, 10, 8, 2))]


# --- the shipped holiday journey: once per holiday, however close -----------------------------------


def _holiday_pack(book: Book, monkeypatch: pytest.MonkeyPatch) -> int:
    shutil.copy(ROOT / "journeys" / "holiday-service-pack.yaml", book.journeys)
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(ROOT / "templates"))
    return book.customer(attributes={"service_preference": "family"})


def _entered(book: Book, cid: int) -> list[str]:
    with Session(get_engine(book.url)) as session:
        return list(session.exec(select(Enrollment.occurrence).where(Enrollment.customer_id == cid)
                                 .order_by(col(Enrollment.entered_at), col(Enrollment.occurrence))).all())


@pytest.mark.parametrize("year", [2025, 2028])
def test_holiday_pack_enters_mid_autumn_days_after_national_day(
    book: Book, monkeypatch: pytest.MonkeyPatch, year: int
) -> None:
    cid = _holiday_pack(book, monkeypatch)
    plan(utc(year, 10, 20), utc(year, 9, 20), url=book.url)
    assert _entered(book, cid) == [f"national_day-{year}", f"mid_autumn-{year}"]


def test_holiday_pack_on_a_shared_day_enters_both_with_distinct_touches(
    book: Book, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = _holiday_pack(book, monkeypatch)
    plan(utc(2031, 10, 20), utc(2031, 9, 20), url=book.url)
    assert _entered(book, cid) == ["mid_autumn-2031", "national_day-2031"]
    with Session(get_engine(book.url)) as session:
        sent = {e.occurrence for e in session.exec(select(Enrollment).where(Enrollment.customer_id == cid)).all()
                if e.split_branch != "holdout"}
    assert {t.key for t in book.touches()} == {f"{cid}:holiday-service-pack:family_pack:{occ}" for occ in sent}


# (what replaces "per: occurrence" in the shipped file, the text of the reported line, the message's words);
# a rule across the mapping's keys is reported where the mapping's first key stands.
REENTRY_MISTAKES = [
    ("per: holiday", "  per: holiday", ["'holiday' is not allowed for 'per'", "occurrence"]),
    ("per: occurrence\n  after: 20d", "  allowed: true", ["either 'after'", "'per: occurrence'"]),
]


@pytest.mark.parametrize(("new", "marker", "words"), REENTRY_MISTAKES, ids=["unknown per", "per and after"])
def test_a_wrong_reentry_form_is_reported_at_its_line(tmp_path: Path, new: str, marker: str, words: list[str]) -> None:
    text = (ROOT / "journeys" / "holiday-service-pack.yaml").read_text(encoding="utf-8")
    assert "  per: occurrence\n" in text
    bad = text.replace("  per: occurrence\n", f"  {new}\n", 1)
    rows = bad.splitlines()
    start = rows.index("reentry:")
    line = next(n for n, row in enumerate(rows[start:], start=start + 1) if row == marker)
    target = tmp_path / "holiday-service-pack.yaml"
    target.write_text(bad, encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(target)])
    assert result.exit_code == 1
    assert any(f"holiday-service-pack.yaml:{line}:" in row and all(w in row for w in words)
               for row in result.output.splitlines()), result.output


def test_allowed_false_takes_no_per_or_after() -> None:
    assert Reentry.model_validate({"allowed": True, "per": "occurrence"}).per == "occurrence"
    with pytest.raises(ValidationError, match="once ever"):
        Reentry.model_validate({"allowed": False, "per": "occurrence"})


# --- date entries on any date field, once or every year ----------------------------------------------


def test_an_anniversary_every_year_keeps_29_february_on_28_february() -> None:
    start = date(2024, 2, 29)
    assert anchored_fires(start, "year", "10:00", "0d", SH, utc(2024, 1, 1), utc(2029, 1, 1)) == [
        ("2025", utc(2025, 2, 28, 2)), ("2026", utc(2026, 2, 28, 2)), ("2027", utc(2027, 2, 28, 2)),
        ("2028", utc(2028, 2, 29, 2))]
    # The start itself is no anniversary; a one-off entry is the date itself.
    assert anchored_fires(date(2027, 3, 10), "year", "10:00", "0d", SH, utc(2027, 3, 1), utc(2027, 4, 1)) == []
    assert anchored_fires(date(2027, 3, 20), None, "10:00", "-15d", SH, utc(2027, 3, 1), utc(2027, 4, 1)) == [
        ("2027-03-20", utc(2027, 3, 5, 2))]


def test_an_attribute_date_is_read_from_its_iso_text() -> None:
    assert as_anchor_date("2027-03-20") == date(2027, 3, 20)
    assert as_anchor_date("2027-03-20T08:00:00+08:00") == date(2027, 3, 20)
    assert as_anchor_date("soon") is None and as_anchor_date(12) is None


ANY_DATE_JOURNEYS = {
    "anniversary": send_journey("anniversary", "Policy anniversary",
                                '{date: {anchor: policy.start_date, every: year, at: "10:00"}}',
                                step="greet", channels="[wechat]"),
    "inspection": send_journey(
        "inspection", "Vehicle inspection",
        '{date: {anchor: customer.attributes.vehicle_inspection_due, offset: -15d, at: "10:00"}}',
        step="remind", channels="[wechat]"),
    "premium": journey(
        "premium", "Premium due", '{date: {anchor: policy.premium_due_date, offset: -7d, at: "09:30"}}', steps(
            remind=send("[wechat]"),
            before_grace_ends='wait: {until: {anchor: policy.grace_period_end, offset: -3d, at: "10:00"}}',
            last_call=send("[wechat]"))),
}


def test_a_dry_run_over_a_month_plans_every_new_date_form(book: Book) -> None:
    for name, text in ANY_DATE_JOURNEYS.items():
        book.journey(name, text)
    leap = book.customer()
    spring = book.customer(attributes={"vehicle_inspection_due": "2027-03-20"})
    late = book.customer(attributes={"vehicle_inspection_due": "2027-05-20"}, timezone=LA)
    book.add(
        Policy(external_id="P1", customer_id=leap, product_line="motor", annual_premium=1000.0,
               start_date=date(2024, 2, 29), expiry_date=date(2028, 2, 28), status="active"),
        Policy(external_id="P2", customer_id=spring, product_line="health", annual_premium=800.0,
               start_date=date(2025, 3, 10), expiry_date=date(2027, 12, 31), status="active",
               premium_due_date=date(2027, 3, 8), grace_period_end=date(2027, 3, 28)),
        Policy(external_id="P3", customer_id=late, product_line="motor", annual_premium=900.0,
               start_date=date(2026, 3, 1), expiry_date=date(2027, 2, 28), status="lapsed"),
    )
    seen: list[Any] = []
    plan(utc(2027, 3, 31, 16), utc(2027, 2, 15), dry_run=True, url=book.url, sink=seen.append)
    planned = sorted(((d.wanted.customer_id, d.wanted.journey_id, d.wanted.step_id, d.due_at)
                      for chunk in seen for d in chunk.decisions if d.planned), key=lambda row: row[3])
    assert planned == [
        (leap, "anniversary", "greet", utc(2027, 2, 28, 2)),  # 29 Feb start: 28 Feb in 2027
        (spring, "premium", "remind", utc(2027, 3, 1, 1, 30)),  # due 8 March, 7 days before at 09:30
        (spring, "inspection", "remind", utc(2027, 3, 5, 2)),  # inspection 20 March, 15 days before
        (spring, "anniversary", "greet", utc(2027, 3, 10, 2)),
        (spring, "premium", "last_call", utc(2027, 3, 25, 2)),  # grace ends 28 March: 3 days before
    ]  # the lapsed policy has no anniversary; the May inspection is not due yet


def test_the_new_policy_dates_come_from_the_import(sqlite_book: Book, tmp_path: Path) -> None:
    book = sqlite_book
    book.customer(external_id="K1")
    csv = tmp_path / "policies.csv"
    csv.write_text("external_id,customer_external_id,product_line,annual_premium,start_date,expiry_date,"
                   "premium_due_date,grace_period_end\n"
                   "P1,K1,motor,1000,2026-03-10,2027-03-09,2027-03-08,2027-03-28\n"
                   "P2,K1,motor,1000,2026-03-10,2027-03-09,2027-03-28,2027-03-08\n", encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["import", "policies", str(csv)])
    assert "grace_period_end 2027-03-08 is before premium_due_date 2027-03-28" in result.output, result.output
    with Session(get_engine(book.url)) as session:
        rows = session.exec(select(Policy)).all()
    assert [(p.external_id, p.premium_due_date, p.grace_period_end) for p in rows] == [
        ("P1", date(2027, 3, 8), date(2027, 3, 28))]


def test_an_anniversary_of_the_expiry_date_is_found_years_after_it(book: Book) -> None:
    book.journey("yearly", send_journey("yearly", "Yearly after expiry",
                                        '{date: {anchor: policy.expiry_date, every: year, offset: -1d, at: "10:00"}}',
                                        step="note", channels="[wechat]"))
    cid = book.policy_holder("life", 5000.0, start=date(2015, 3, 20), expiry=date(2025, 3, 20))
    plan(utc(2027, 4, 1), utc(2027, 3, 1), url=book.url)
    assert [(t.key, t.due_at) for t in book.touches()] == [
        (f"{cid}:yearly:note:policy-1-expiry_date-2027", utc(2027, 3, 19, 2))]


_ZONES = st.sampled_from([SH, LA, "UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
_OFFSETS = st.sampled_from(["0d", "-30d", "7d", "-1d12h", "45d", "-400d"])


@given(anchor=st.one_of(st.dates(date(1996, 1, 1), date(2029, 12, 31)), st.sampled_from([date(2000, 2, 29),
                                                                                     date(2024, 2, 29)])),
       every=st.sampled_from([None, "year"]), years=st.integers(1, 30), offset=_OFFSETS,
       at=st.sampled_from(["00:00", "10:00", "23:59"]), tz=_ZONES, moved=st.sampled_from(["keep", "next_working_day"]),
       hours=st.integers(1, 24 * 40), before=st.integers(0, 999))
def test_an_anchor_date_that_fires_in_the_window_is_never_skipped(
    anchor: date, every: str | None, years: int, offset: str, at: str, tz: str, moved: NonWorkingDay,
    hours: int, before: int,
) -> None:
    """The planner works out fires only for the anchor dates ``_may_fire`` lets through, so it must let
    through every date with a fire in the window, whatever the zone, offset and window: the window is
    drawn around one of the anchor's fires (an anniversary, 29 February's on 28 February)."""
    year = anchor.year + years if every else anchor.year
    fire = anchor_fire(anniversary_in(anchor, year), at, offset, tz, moved)
    # ``before`` thousandths of the window lie before the fire, so it is always inside (start, end].
    start = fire - timedelta(hours=hours) * before / 1000 - timedelta(microseconds=1)
    end = start + timedelta(hours=hours)
    assert (str(year) if every else anchor.isoformat(), fire) in anchored_fires(anchor, every, at, offset, tz,
                                                                                 start, end, moved)
    entry = DateEntry(anchor="policy.start_date", every=every, offset=offset, at=at, on_non_working_day=moved)
    assert _may_fire(entry, start, end)(anchor)


def test_the_month_and_day_sql_narrows_by_are_the_dates_own(migrated_any_db: str) -> None:
    """Anniversaries are narrowed in SQL by ``month * 100 + day``: on both databases it must be the code
    ``_may_fire`` and ``birth_md_candidates`` use (29 February included), or policies would be skipped."""
    days = [date(2024, 2, 29), date(2023, 2, 28), date(2026, 1, 1), date(2026, 12, 31), date(1999, 10, 9)]
    engine = get_engine(migrated_any_db)
    with Session(engine) as session:
        dialect = session.get_bind().dialect.name
        for day in days:
            column = sa.literal(day, sa.Date)
            assert session.execute(sa.select(_month_day(column, dialect))).scalar_one() == day.month * 100 + day.day
