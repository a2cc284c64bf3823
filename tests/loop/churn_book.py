"""A January book of gold customers, all in force on its first day, one of whose policies lapsed: churn
is 1/n of them (what the report's churn figures, its target and its chart are judged on)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from store.db import session_scope
from store.models import Customer, Policy

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def book_losing_one(db_url: str, n: int) -> None:
    """``n`` gold customers with a motor policy each that expired before ``START``; the first lapsed."""
    with session_scope(db_url) as session:
        for i in range(n):
            customer = Customer(external_id=f"C{i}", name=f"C{i}", tier="gold", created_at=CREATED,
                                updated_at=CREATED)
            session.add(customer)
            session.flush()
            assert customer.id is not None
            session.add(Policy(external_id=f"P{i}", customer_id=customer.id, product_line="motor",
                               annual_premium=1000, start_date=date(2025, 6, 1), expiry_date=date(2026, 5, 31),
                               status="lapsed" if i == 0 else "active"))
