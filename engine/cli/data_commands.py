"""``journeys seed`` and ``journeys import``: data into the store."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
