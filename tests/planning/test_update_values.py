"""The planner never writes a list or a mapping into a customer's attributes: a journey file whose
update step gives one is not put in force (and the version in force, if any, stays), so its customers
keep the attributes they had."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from engine.planning.planner import plan
from store.db import get_engine
from store.models import Customer, Enrollment
from tests.plan_support import Book, utc

MARK = """
    id: mark
    name: Mark
    category: service
    entry: {schedule: {cron: "0 10 * * MON"}}
    steps:
      - id: mark
        update: {field: customer.attributes.seen, value: VALUE}
      - id: send
        send: {channels: [sms], template: msg}
"""


@pytest.mark.parametrize("value", ["[1, 2]", "{tier: gold}", "null"])
def test_an_update_of_a_list_or_mapping_writes_nothing(value: str, sqlite_book: Book) -> None:
    book = sqlite_book
    book.journey("mark", MARK.replace("VALUE", value))
    cid = book.customer(attributes={"seen": "before"})
    result = plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url)
    with Session(get_engine(book.url)) as session:
        customer = session.get(Customer, cid)
        assert customer is not None and customer.attributes == {"seen": "before"}
        assert session.exec(select(Enrollment)).all() == []
    assert book.touches() == [] and any("one value" in problem for problem in result.problems), result.problems


def test_an_update_of_one_value_is_written(sqlite_book: Book) -> None:
    book = sqlite_book
    book.journey("mark", MARK.replace("VALUE", "7"))
    cid = book.customer(attributes={"seen": "before"})
    plan(utc(2027, 3, 2), utc(2027, 2, 28), url=book.url)
    with Session(get_engine(book.url)) as session:
        customer = session.get(Customer, cid)
        assert customer is not None and customer.attributes == {"seen": 7}
