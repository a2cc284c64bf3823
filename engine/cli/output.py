"""The CLI's two consoles: results on stdout, messages on stderr (so ``--json`` output stays parseable)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer
from rich.console import Console

# highlight/soft_wrap/emoji off: output is piped and grepped, and Rich must not colour or fold it, nor
# read ":100:" in "file.yaml:100:3: ..." as an emoji code (a problem on line 100 showed as "file.yaml💯3").
# In a pipe or a file Rich would lay tables out for 80 columns and cut what does not fit to "…"
# (journey ids, conditions): there nobody's screen sets the width, so the tables get room to show
# every value whole. COLUMNS, when set, still decides.
PIPE_WIDTH = 200
out = Console(highlight=False, soft_wrap=True, emoji=False,
              width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` on stderr; the caller raises the returned Exit."""
    err.print(message, markup=False)
    return typer.Exit(code)


def refuse_missing_folders() -> None:
    """Exit 2 in one line when JOURNEYS_DIR, JOURNEYS_TEMPLATES_DIR or JOURNEYS_CONFIG_DIR names no folder,
    for the commands that read the programme (docs/cli.md: a setting at fault)."""
    from engine.language.paths import folder_setting_problem

    problem = folder_setting_problem()
    if problem is not None:
        raise fail(problem)


def print_json(data: Any) -> None:
    out.print(json.dumps(data, ensure_ascii=False), markup=False)


# The key that signs customers' unsubscribe links (channels.optout.SECRET_ENV; not imported here, so that
# `journeys --help` does not load the channels).
SECRET_ENV = "JOURNEYS_SECRET_KEY"  # nosec B105 # the name of an environment variable, not a secret


def warn_if_no_secret(consequence: str) -> None:
    """One line on stderr when JOURNEYS_SECRET_KEY is not set, saying what it costs this command and what
    to set: every command that signs or reads unsubscribe links says it alike. The channels' own log
    record of it (a timestamped ERROR with the services' wording) is then not written as well."""
    if os.environ.get(SECRET_ENV):
        return
    from channels.optout import missing_secret_logged

    missing_secret_logged.set()
    err.print(f"warning: {SECRET_ENV} is not set: {consequence}; set {SECRET_ENV} to the same lasting value "
              "on every process", markup=False)
