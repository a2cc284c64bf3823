"""One customer whose row the planner cannot plan (here an event stamped in year 1, which the
inputs now refuse but an older store may hold) is left out of the run and reported; every other
customer is planned exactly as in a book without that row, sequentially, in chunks and in two
worker processes. Before, the run failed at that chunk, and so did every later run. On SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

from engine.planning.planner import plan
from store.db import get_engine
from store.migrate import upgrade
from store.models import Event, Touch
from tests.db_support import scratch_postgres_database
from tests.plan_support import Book, send_journey, utc

AT = utc(2026, 11, 23, 2)  # 10:00 in Shanghai


def _book(book: Book, poison: bool) -> tuple[list[int], int]:
    book.journey("complaint", send_journey("complaint", "Complaint", "{event: {type: complaint.filed}}",
                                           step="sorry", channels="[sms]"))
    book.journey("weekly", send_journey("weekly", "Weekly", '{schedule: {cron: "0 10 * * MON"}}',
                                        step="hello", channels="[wechat]"))
    ids = [book.customer() for _ in range(40)]
    bad = ids[17]
    rows = [Event(external_id=f"ev-{cid}", type="complaint.filed", customer_id=cid, data={},
                  occurred_at=utc(2026, 11, 23, 1), received_at=utc(2026, 11, 23, 1)) for cid in ids[::3]]
    if poison:
        # Written straight to the store, as an older version let it in through the API.
        rows.append(Event(external_id="ev-year-1", type="complaint.filed", customer_id=bad, data={},
                          occurred_at=datetime(1, 1, 1, tzinfo=UTC), received_at=utc(2026, 11, 23, 1)))
    book.add(*rows)
    return ids, bad


def _planned(url: str) -> set[tuple[int, str, str]]:
    with Session(get_engine(url)) as session:
        return {(t.customer_id, t.journey_id, t.key) for t in session.exec(select(Touch)).all()}


@pytest.mark.parametrize("how", [{"chunk": 5000}, {"chunk": 7}, {"chunk": 7, "workers": 2}],
                         ids=["one-chunk", "chunks", "two-workers"])
def test_a_customer_the_planner_cannot_plan_is_left_out_and_the_rest_planned_as_without_it(
        book: Book, how: dict[str, Any], tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _ids, bad = _book(book, poison=True)
    result = plan(AT, start=utc(2026, 11, 23), url=book.url, **how)
    assert list(result.failed_customers) == [
        f"customer id {bad}: OverflowError: date value out of range"], result.failed_customers
    planned = _planned(book.url)

    # The same book without the bad row, in a database of its own: the other customers' plan is the same.
    with _other_db(book.url, tmp_path_factory) as other:
        clean = Book(tmp_path_factory.mktemp("clean"), other, monkeypatch)
        _book(clean, poison=False)
        expected = plan(AT, start=utc(2026, 11, 23), url=clean.url, **how)
        assert not expected.failed_customers
        without_bad = {t for t in _planned(clean.url) if t[0] != bad}
    monkeypatch.setenv("JOURNEYS_DIR", str(book.journeys))  # the clean book pointed them at its own folders
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(book.templates))
    assert planned == without_bad and planned
    assert result.touches_written == len(planned)

    # The next run tries the customer again, says so again, and adds nothing for the others.
    again = plan(AT, url=book.url, **how)
    assert list(again.failed_customers) == list(result.failed_customers)
    assert again.touches_written == 0 and _planned(book.url) == planned
    with Session(get_engine(book.url)) as session:
        assert session.exec(select(Event.processed_at).where(Event.external_id == "ev-year-1")).one() is None


@contextmanager
def _other_db(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second migrated store of the same kind as ``url``, dropped afterwards."""
    if url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path_factory.mktemp('db') / 'clean.db'}"
        upgrade(other)
        yield other
        return
    with scratch_postgres_database(url, f"journeys_t_{uuid.uuid4().hex[:12]}") as (other, _admin):
        upgrade(other)
        try:
            yield other
        finally:
            get_engine(other).dispose()


def test_journeys_plan_says_whom_it_left_out_and_exits_1(book: Book) -> None:
    from typer.testing import CliRunner

    from engine.cli import build_app

    _ids, bad = _book(book, poison=True)
    result = CliRunner().invoke(build_app(), ["plan", "--from", "2026-11-23T00:00+00:00",
                                              "--at", "2026-11-23T02:00+00:00"])
    assert result.exit_code == 1, result.output
    assert (f"customer id {bad}: OverflowError: date value out of range (left out of this run; "
            "the next run tries again)") in " ".join(result.output.split())
    assert "written: " in result.output and _planned(book.url)


def test_a_slices_report_of_whom_it_left_out_reaches_the_run(book: Book) -> None:
    """Scaled out, each Prefect slice hands its counts back as JSON (``engine.runtime.plan_slices``);
    the customers it left out travel with them and add up in the run's result."""
    from engine.runtime.plan_slices import result_from_json, result_json

    _ids, bad = _book(book, poison=True)
    sliced = plan(AT, start=utc(2026, 11, 23), url=book.url, chunk=7)
    back = result_from_json(result_json(sliced), sliced.start, sliced.end, sliced.dry_run)
    assert back.failed_customers == sliced.failed_customers and len(back.failed_customers) == 1
    total = result_from_json("{}", sliced.start, sliced.end, sliced.dry_run)
    total.merge(back)
    assert list(total.failed_customers) == [f"customer id {bad}: OverflowError: date value out of range"]
