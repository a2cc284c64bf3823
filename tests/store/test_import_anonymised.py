"""An anonymised customer cannot be made a person again by an import naming its external id.

The purge keeps the row (``anonymised-<id>``) with its touches, tasks and answers for the figures;
a file row with that id and a name and phone would have put them back on it, and with them every
kept record would be that person's history again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from store.bulk_writer import CUSTOMER
from store.clock import utcnow
from store.db import make_engine
from store.retention import purge
from tests.db_support import rows
from tests.store.test_import import import_clean, import_rejecting, write


def test_an_import_row_naming_an_anonymised_customer_is_a_bad_row(db_url: str, tmp_path: Path) -> None:
    import_clean("customers", tmp_path / "a.csv", "external_id,name,phone\nA1,张三,+8613812345678\nB2,李四,\n")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(update(CUSTOMER).where(CUSTOMER.c.external_id == "A1")
                     .values(created_at=utcnow() - timedelta(days=5 * 365), last_active_at=None))
    engine.dispose()
    [anonymised] = purge(db_url, "3y").customer_ids

    source = write(tmp_path / "b.csv", f"external_id,name,phone\nanonymised-{anonymised},张三,+8613812345678\n"
                                       "B2,李四,+8613900001111\n")
    import_rejecting("customers", source, [
        (2, f"customer 'anonymised-{anonymised}' is anonymised: it takes no personal data again")])
    assert rows(db_url, CUSTOMER, "external_id", "name", "phone") == [
        ("B2", "李四", "+8613900001111"), (f"anonymised-{anonymised}", "匿名", None)]
