"""A nightly customer file does not give back a consent the customer withdrew through us.

The source system never hears of a ``TD`` reply, an unsubscribe link or an unfollow, so its file
still says ``yes`` (or ``channel`` for marketing) the night after. The opt-out stands until the
file shows a consent given after it (a ``consent_<channel>_at`` later than the withdrawal)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select

from channels.optout import record_opt_out
from store.bulk_writer import CUSTOMER
from store.db import make_engine
from store.models import Customer
from tests.db_support import rows
from tests.store.test_import import import_clean, import_rejecting, write

OPTED_OUT_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HEADER = ("external_id,name,consent_sms,consent_sms_at,consent_sms_marketing,consent_sms_marketing_at,"
          "consent_email\n")


def _opt_out(url: str, external_id: str, purpose: str) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        customer = session.exec(select(Customer).where(Customer.external_id == external_id)).one()
        assert customer.id is not None
        assert record_opt_out(session, customer.id, "sms", source="reply:sms", dedup_key=f"td:{external_id}",
                              at=OPTED_OUT_AT, purpose=purpose) is not None
        session.commit()
    engine.dispose()


def _consents(url: str) -> list[tuple[object, ...]]:
    return [(r[0], r[1], r[2], r[3]) for r in rows(url, CUSTOMER, "external_id", "consent_sms", "consent_sms_marketing",
                                                   "consent_email")]


def test_a_later_import_does_not_give_back_what_an_opt_out_withdrew(db_url: str, tmp_path: Path) -> None:
    nightly = HEADER + "A,Ann,yes,,yes,,yes\nB,Bob,yes,,channel,,yes\nC,Cy,no,,,,yes\n"
    import_clean("customers", tmp_path / "1.csv", nightly)
    _opt_out(db_url, "A", "all")  # TD to a service message: the channel goes
    _opt_out(db_url, "B", "marketing")  # TD to a marketing SMS: marketing on SMS goes

    import_clean("customers", tmp_path / "2.csv", nightly)
    assert _consents(db_url) == [("A", False, False, True), ("B", True, False, True), ("C", False, False, True)]
    sources = rows(db_url, CUSTOMER, "external_id", "consent_sms_source", "consent_sms_marketing_source")
    assert sources[:2] == [("A", "reply:sms", "reply:sms"), ("B", "import", "reply:sms")]

    # A consent time before the opt-out is the old consent: still withdrawn.
    import_clean("customers", tmp_path / "3.csv",
                 HEADER + "A,Ann,yes,2026-02-01T10:00:00+00:00,yes,,yes\n"
                          "B,Bob,yes,,yes,2026-01-05T10:00:00+00:00,yes\n")
    assert _consents(db_url)[:2] == [("A", False, False, True), ("B", True, False, True)]

    # The customer consented again after the opt-out, and the file says when: that is taken.
    import_clean("customers", tmp_path / "4.csv",
                 HEADER + "A,Ann,yes,2026-04-01T10:00:00+00:00,yes,2026-04-01T10:00:00+00:00,yes\n"
                          "B,Bob,yes,,yes,2026-04-02T10:00:00+00:00,yes\n"
                          "C,Cy,yes,,,,yes\n")  # withdrawn by an earlier file, not by the customer with us
    assert _consents(db_url) == [("A", True, True, True), ("B", True, True, True), ("C", True, False, True)]


def test_a_consent_time_in_the_future_is_a_bad_row_and_gives_nothing_back(db_url: str, tmp_path: Path) -> None:
    """A consent dated ahead of now outranked every opt-out made before that date: a file stamping its
    consents 2099 gave back, at each import, whatever the customer withdrew in between."""
    import_clean("customers", tmp_path / "1.csv", HEADER + "A,Ann,yes,,yes,,yes\nB,Bob,yes,,yes,,yes\n")
    _opt_out(db_url, "A", "all")
    future = "is in the future: a consent is dated when it was given"
    import_rejecting("customers", write(tmp_path / "2.csv",
                                        HEADER + "A,Ann,yes,2099-01-01T00:00:00+00:00,yes,,yes\n"
                                                 "B,Bob,yes,,yes,2099-01-01,no\n"
                                                 "C,Cy,yes,,,,yes\n"),
                     [(2, f"consent_sms_at 2099-01-01T00:00:00+00:00 {future}"),
                      (3, f"consent_sms_marketing_at 2099-01-01 {future}")])
    assert _consents(db_url) == [("A", False, False, True), ("B", True, True, True), ("C", True, False, True)]
