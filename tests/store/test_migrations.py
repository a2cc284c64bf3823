"""The Alembic migrations build the whole schema on SQLite and PostgreSQL, and come back down."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, Index, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from store.db import make_engine
from store.migrate import current_revision, downgrade, upgrade
from store.models import Customer, Touch

# Indexes whose key the planner leaves empty in nearly every row it writes (migration 0014).
PARTIAL_SINCE_0014 = {"ix_enrollment_event_id": "event_id", "ix_agent_task_event_id": "event_id",
                      "ix_task_completed": "completed_at"}


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


def _index_definitions(engine: Engine) -> dict[str, str]:
    """Each index's DDL as the database holds it, by name."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        else:
            rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"))
        return {name: definition for name, definition in rows}


def test_indexes_on_keys_the_planner_leaves_empty_leave_those_rows_out(any_db_url: str) -> None:
    """0014 makes the three indexes partial, as the models declare them, and 0013 gives them back whole."""
    models: dict[str | None, Index] = {ix.name: ix for table in ("enrollment", "agent_task")
                                       for ix in SQLModel.metadata.tables[table].indexes
                                       if ix.name in PARTIAL_SINCE_0014}
    assert set(models) == set(PARTIAL_SINCE_0014)
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    try:
        dialect = engine.dialect.name
        migrated = _index_definitions(engine)
        for name, column in PARTIAL_SINCE_0014.items():
            condition = f"{column} IS NOT NULL"
            assert str(models[name].dialect_options[dialect]["where"]) == condition
            assert condition in migrated[name], migrated[name]
        downgrade(any_db_url, "0013")
        whole = _index_definitions(engine)
        for name, column in PARTIAL_SINCE_0014.items():
            assert "WHERE" not in whole[name].upper() and column in whole[name], whole[name]
        upgrade(any_db_url)
        assert _index_definitions(engine) == migrated
    finally:
        engine.dispose()


def _model_indexes() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each named index the models declare: its table and columns."""
    return {ix.name: (table.name, tuple(c.name for c in ix.columns))
            for table in SQLModel.metadata.sorted_tables for ix in table.indexes if isinstance(ix.name, str)}


def test_the_migrated_indexes_are_the_ones_the_models_declare(any_db_url: str) -> None:
    """Every index a model declares is built by the migrations, on the same columns in the same order,
    and the migrations build no other: a model's index with no migration (or a migration's the model
    forgets) would exist only in tests that create the tables from the models."""
    upgrade(any_db_url)
    engine = make_engine(any_db_url)
    try:
        found = inspect(engine)
        migrated = {ix["name"]: (table, tuple(c for c in ix["column_names"] if c is not None))
                    for table in SQLModel.metadata.tables for ix in found.get_indexes(table)
                    # PostgreSQL lists a unique constraint's own index too: the constraint is the model's.
                    if isinstance(ix["name"], str) and not ix.get("duplicates_constraint")}
        assert migrated == _model_indexes()
    finally:
        engine.dispose()
