"""The ``journeys`` command, the top layer: each area registers its commands in its own module below.

May import every other package; nothing imports it (the console calls the same functions directly)."""

from __future__ import annotations

import logging
import os

import typer

from store.masking import install_masking_filter

app = typer.Typer(
    name="journeys",
    help="Service Journeys: tiered, rule-driven customer service journeys for an insurer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_registered = False


def build_app() -> typer.Typer:
    """The CLI with every area's commands (also used by tests through typer's CliRunner)."""
    global _registered
    if not _registered:
        _register()
        _registered = True
    return app


def _register() -> None:
    # Imported here so that `journeys --help` stays fast and a broken optional area cannot
    # take the others down with it at import time of this module.
    from engine.cli import (
        channel_commands,
        console_commands,
        data_commands,
        db_commands,
        journey_commands,
        plan_commands,
        privacy_commands,
        report_commands,
        review_commands,
        run_commands,
    )

    for module in (
        journey_commands,
        db_commands,
        data_commands,
        plan_commands,
        channel_commands,
        run_commands,
        console_commands,
        report_commands,
        privacy_commands,
        review_commands,
    ):
        module.register(app)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("JOURNEYS_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_masking_filter()
    build_app()()
