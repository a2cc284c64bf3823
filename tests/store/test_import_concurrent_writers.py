"""An import chunk decides from the stored rows it reads (new or changed, a tier move for the history, an
opt-out the file may not undo) and writes: nothing another writer commits may come between the two.
Read apart from the write, two imports of one file each recorded every new customer's tier move, and an
opt-out committed between the read and the write was overwritten by the file's consent.

The interleaving is made, not hoped for: a transaction of the test holds what the importers need, and
is committed only once PostgreSQL shows them all waiting on a lock (``pg_stat_activity``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from store.bulk_writer import CUSTOMER, TIER_CHANGE
from store.db import make_engine
from store.importing import ImportReport, import_csv
from store.migrate import upgrade
from tests.db_support import rows

pytestmark = pytest.mark.postgres

# Polls of pg_stat_activity before giving up: the importers reach their lock within a second or two.
_POLLS = 600


@contextmanager
def _held(url: str, statement: str) -> Iterator[Callable[[int], None]]:
    """A transaction that runs ``statement`` and commits when the function it gives is called with the
    number of other sessions of this database that must be waiting on a lock first."""
    engine = make_engine(url)
    conn: Connection = engine.connect()
    conn.execute(text(statement))
    watch = engine.connect()

    def release(waiting: int) -> None:
        seen = 0
        for _ in range(_POLLS):
            seen = watch.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            watch.rollback()
            if seen >= waiting:
                break
            threading.Event().wait(0.05)
        assert seen >= waiting, f"{seen} importers waiting on a lock, not {waiting}"
        conn.commit()

    try:
        yield release
    finally:
        conn.close()
        watch.close()
        engine.dispose()


def _importing(url: str, path: Path, reports: list[ImportReport]) -> threading.Thread:
    thread = threading.Thread(target=lambda: reports.append(import_csv("customers", path, url)))
    thread.start()
    return thread


def test_two_imports_of_one_file_record_each_tier_move_once(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    book = "external_id,name,tier\n" + "".join(f"T{i},Name {i},gold\n" for i in range(50))
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for path in paths:
        path.write_text(book, encoding="utf-8")
    reports: list[ImportReport] = []
    # Readers pass, writers wait: each import gets as far as its chunk's write.
    with _held(pg_url, "LOCK TABLE customer IN SHARE MODE") as release:
        threads = [_importing(pg_url, path, reports) for path in paths]
        release(2)
    for thread in threads:
        thread.join()
    assert len(rows(pg_url, CUSTOMER, "id")) == 50
    assert len(rows(pg_url, TIER_CHANGE, "id")) == 50
    assert sorted((r.inserted, r.unchanged) for r in reports) == [(0, 50), (50, 0)]


def test_an_opt_out_committed_while_a_chunk_runs_is_not_undone(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    first = tmp_path / "first.csv"
    first.write_text("external_id,name,consent_sms\nK1,Kim,yes\n", encoding="utf-8")
    assert import_csv("customers", first, pg_url).inserted == 1
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("external_id,name,consent_sms\nK1,Kim Lee,yes\n", encoding="utf-8")
    reports: list[ImportReport] = []
    # The customer's TD reply, as the webhook records it (store.consent), not yet committed.
    with _held(pg_url, "UPDATE customer SET consent_sms = false, consent_sms_source = 'reply:sms', "
                       "consent_sms_at = now() WHERE external_id = 'K1'") as release:
        thread = _importing(pg_url, renamed, reports)
        release(1)
    thread.join()
    assert reports[0].updated == 1
    assert rows(pg_url, CUSTOMER, "name", "consent_sms", "consent_sms_source") == [("Kim Lee", False, "reply:sms")]
