"""The Alembic migrations build the whole schema on SQLite and PostgreSQL, and come back down."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from store.db import make_engine
from store.migrate import current_revision, downgrade, upgrade
from store.models import Customer, Touch


def test_upgrade_creates_every_table_and_downgrade_removes_them(any_db_url: str) -> None:
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        assert current_revision(any_db_url) is not None
        downgrade(any_db_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(any_db_url)  # and up again from nothing
        assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_touch_key_is_unique_and_datetimes_come_back_utc(any_db_url: str) -> None:
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    now = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    try:
        with Session(engine) as session:
            customer = Customer(external_id="C1", name="张三", created_at=now, updated_at=now)
            session.add(customer)
            session.commit()
            assert customer.id is not None

            def touch() -> Touch:
                assert customer.id is not None
                return Touch(
                    key=f"{customer.id}:j:s:2026-W48", customer_id=customer.id, journey_id="j",
                    journey_version="v", step_id="s", occurrence="2026-W48", category="service",
                    channel="sms", template="t", planned_for=now, due_at=now, created_at=now,
                )

            session.add(touch())
            session.commit()
            session.add(touch())
            with pytest.raises(IntegrityError):
                session.commit()
            session.rollback()
            stored = session.get(Customer, customer.id)
            assert stored is not None and stored.created_at == now and stored.created_at.tzinfo is not None
    finally:
        engine.dispose()
