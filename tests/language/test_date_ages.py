"""``within_last`` / ``older_than`` / ``within_next`` on a date: measured from the customer's local
midnight, whatever the zone, and on a date that arrives as ISO text (an attribute, an event's
``date`` field) as on a stored one. Both evaluators (the reference one and durable-rules, which the
planner runs) agree; through the planner, an attribute's date selects the customer on the day the
condition says, in Shanghai as in Auckland."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language.conditions import epoch_seconds, evaluate
from engine.language.journey_model import Condition
from engine.planning.planner import plan
from engine.planning.rules import evaluate_many
from tests.plan_support import Book, utc

ZONES = ["Asia/Shanghai", "Pacific/Auckland", "America/Los_Angeles", "Pacific/Kiritimati", "Pacific/Pago_Pago",
         "Asia/Kathmandu", "UTC"]


def both(cond: dict[str, Any], fact: dict[str, Any], now: float) -> bool:
    """The condition's result, after checking that both evaluators give it."""
    parsed = Condition.model_validate(cond)
    reference = evaluate(parsed, fact, now)
    assert evaluate_many(parsed, [fact], [now]) == [reference], (cond, fact)
    return reference


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), day=st.dates(date(2020, 1, 1), date(2035, 12, 31)),
       hour=st.integers(1, 22), ahead=st.integers(-60, 60), span=st.integers(1, 45),
       op=st.sampled_from(["within_next", "within_last", "older_than"]))
def test_a_dates_age_is_counted_on_the_customers_own_calendar(zone: str, day: date, hour: int, ahead: int, span: int,
                                                           op: str) -> None:
    # At ``hour`` o'clock on the customer's local ``day``, the policy expires ``ahead`` local days on.
    now = epoch_seconds(datetime.combine(day, time(hour), tzinfo=ZoneInfo(zone)))
    fact = {"customer.timezone": zone, "policy.expiry_date": day + timedelta(days=ahead)}
    got = both({"field": "policy.expiry_date", "op": op, "value": f"{span}d"}, fact, now)
    # Counted in local days (an hour of daylight saving either way never crosses a day here):
    # the next N days are tomorrow to N days on; the last N days today and the N - 1 before it.
    expected = {"within_next": 1 <= ahead <= span, "within_last": -span < ahead <= 0,
                "older_than": ahead <= -span}[op]
    assert got is expected, (zone, day, hour, ahead, span, op)


NOW = epoch_seconds(datetime(2027, 2, 25, 10, tzinfo=ZoneInfo("Asia/Shanghai")))


def test_a_date_written_as_text_has_an_age() -> None:
    fact = {"customer.timezone": "Asia/Shanghai", "event.data.due_date": "2027-02-21",
            "customer.attributes.inspection_due": "2027-03-05",
            "customer.attributes.paid_at": "2027-02-24T18:00:00+08:00",
            "customer.attributes.note": "soon"}
    # policy.premium_paid declares due_date a date: paid four days after it was due.
    assert both({"field": "event.data.due_date", "op": "within_last", "value": "7d"}, fact, NOW)
    assert not both({"field": "event.data.due_date", "op": "older_than", "value": "7d"}, fact, NOW)
    assert both({"field": "customer.attributes.inspection_due", "op": "within_next", "value": "15d"}, fact, NOW)
    assert both({"field": "customer.attributes.paid_at", "op": "within_last", "value": "1d"}, fact, NOW)
    # Text that is no date has no age: the test fails and its negation passes, in both evaluators.
    assert not both({"field": "customer.attributes.note", "op": "within_next", "value": "15d"}, fact, NOW)
    assert both({"not": {"field": "customer.attributes.note", "op": "within_next", "value": "15d"}}, fact, NOW)


INSPECTION = """\
id: inspection
name: Inspection
category: service
audience:
  when: {field: customer.attributes.inspection_due, op: within_next, value: 15d}
entry:
  schedule: {cron: "0 10 * * *"}
reentry: {allowed: true, after: 60d}
steps:
  - id: remind
    send: {channels: [sms], template: msg}
"""


def test_an_attribute_date_selects_the_customer_fifteen_days_ahead_in_every_zone(sqlite_book: Book) -> None:
    sqlite_book.journey("inspection", INSPECTION)
    zones = {"Asia/Shanghai": None, "Pacific/Auckland": None, "America/Los_Angeles": None}
    for zone in zones:
        zones[zone] = sqlite_book.customer(timezone=zone, attributes={"inspection_due": "2027-03-20"})
    plan(utc(2027, 3, 12), utc(2027, 2, 25), url=sqlite_book.url)
    sent = {t.customer_id: t.due_at for t in sqlite_book.touches()}
    # 10:00 local on 5 March: 14 days 14 hours before the local midnight of 20 March; 4 March is 15 days 14 hours.
    assert {zone: sent.get(cid) for zone, cid in zones.items()} == {
        zone: datetime(2027, 3, 5, 10, tzinfo=ZoneInfo(zone)) for zone in zones}
