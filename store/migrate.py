"""Schema migrations (Alembic), run by ``journeys db upgrade``.

Areas of the product add their own revisions branching from ``0001``; ``upgrade``
goes to ``heads`` so every branch is applied.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from store.db import database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would eat a '%' in a password.
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from store.db import make_engine

    engine = make_engine(url or database_url())
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
            return ",".join(sorted(heads)) if heads else None
    finally:
        engine.dispose()
