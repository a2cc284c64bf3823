"""Data protection commands (SPEC §9): ``journeys keys …``, ``journeys export customers|policies|claims``,
``journeys purge``.

Output rules: summaries to stdout, problems to stderr; exit code 2 when the command
cannot run (bad arguments, no key, no schema). Nothing personal is ever printed; a key
is printed only by ``keys generate``, which exists to print one.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer

from engine.cli.arguments import output_file, retention_option, whole_option, writing
from engine.cli.output import err, fail, out, print_json

keys_app = typer.Typer(help="Data keys: generate, rotate, see which key encrypted what.", no_args_is_help=True)
export_app = typer.Typer(help="Export data (masked unless --unmasked; every export is audited).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(export_app, name="export")
    app.command("purge")(purge)


@contextmanager
def _failing_on(command: str, *errors: type[Exception]) -> Iterator[None]:
    """The errors a command expects (bad arguments, no key, no schema) end it with code 2, no traceback."""
    try:
        yield
    except errors as exc:
        raise fail(f"{command}: {exc}") from None


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random AES-256 data key (base64), for JOURNEYS_DATA_KEY or a rotation."""
    out.print(base64.b64encode(os.urandom(32)).decode(), markup=False)


@keys_app.command("rotate")
def keys_rotate(
    new_key_env: str = typer.Option(..., "--new-key-env", help="Environment variable holding the new key (base64)."),
    batch: int = whole_option(500, "--batch", low=1, high=100_000, help="Values re-encrypted per transaction"),
    max_batches: int | None = whole_option(
        None, "--max-batches", low=1, high=1_000_000_000, help="Stop after this many batches; the next run resumes"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Re-encrypt every encrypted field from the current key (JOURNEYS_DATA_KEY) to the new one.

    Resumable: an interrupted run continues where it stopped. Exit code 0 when every value
    is under the new key, 1 when some are not yet (stopped early, or values no key reads), 2 on errors.
    """
    from store.crypto import DataKeyError, load_key
    from store.db import database_url
    from store.key_rotation import RotationError, rotate_keys

    with _failing_on("keys rotate", DataKeyError):
        new_key = load_key(new_key_env)
    with _failing_on("keys rotate", RotationError):
        report = rotate_keys(database_url(), new_key, batch_size=batch, max_batches=max_batches)
    if as_json:
        print_json(report.as_dict())
    else:
        state = "complete" if report.complete else "not complete (run again to resume)"
        out.print(
            f"key rotation to {report.new_key_id}: {state}; re-encrypted {report.rotated}, already under the new key "
            f"{report.already}, changed meanwhile {report.changed_meanwhile}, unreadable {len(report.undecryptable)}, "
            f"{report.batches} batches",
            markup=False,
        )
        if report.complete:
            out.print(f"now set JOURNEYS_DATA_KEY to the key in {new_key_env}", markup=False)
    for name, row_id, kid in report.undecryptable[:20]:
        err.print(f"{name} row {row_id}: no configured key reads it (key id {kid})", markup=False)
    raise typer.Exit(0 if report.complete else 1)


@keys_app.command("status")
def keys_status() -> None:
    """How many encrypted values each key wrote (current, previous, unknown, legacy)."""
    from store.db import database_url
    from store.key_rotation import key_census

    for name, counts in key_census(database_url()).items():
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no values"
        out.print(f"{name}: {shown}", markup=False)


class ExportKind(StrEnum):
    customers = "customers"


@export_app.command("customers")
def export_customers(
    out_file: Path = typer.Option(..., "--out", "-o", help="CSV file to write."),
    unmasked: bool = typer.Option(False, "--unmasked", help="Write personal data unmasked (needs --actor)."),
    actor: str | None = typer.Option(None, "--actor", help="Who takes the data out (audited)."),
    tier: str | None = typer.Option(None, "--tier", help="Only customers of this tier."),
) -> None:
    """Write customers to a CSV file: masked PII by default; every export goes to the audit log."""
    from store.db import database_url
    from store.export import ExportError
    from store.export import export_customers as run_export

    output_file(out_file, "--out")
    with _failing_on("export customers", ExportError), writing("--out", out_file):
        report = run_export(database_url(), out_file, unmasked=unmasked, actor=actor, tier=tier)
    kind = "UNMASKED" if report.unmasked else "masked"
    out.print(f"exported {report.rows} customers ({kind}) to {report.path}; audited as {report.actor}", markup=False)


def _export_records(kind: str, out_file: Path, actor: str | None) -> None:
    from store.db import database_url
    from store.export import ExportError
    from store.export_records import export_records

    output_file(out_file, "--out")
    with _failing_on(f"export {kind}", ExportError), writing("--out", out_file):
        report = export_records(database_url(), kind, out_file, actor=actor)
    out.print(f"exported {report.rows} {kind} to {report.path}; audited as {report.actor}", markup=False)


RECORDS_OUT = typer.Option(..., "--out", "-o", help="CSV file to write (the columns journeys import takes).")
RECORDS_ACTOR = typer.Option(None, "--actor", help="Who takes the data out (audited; default: login name).")


@export_app.command("policies")
def export_policies(out_file: Path = RECORDS_OUT, actor: str | None = RECORDS_ACTOR) -> None:
    """Write every policy to a CSV file ``journeys import policies`` takes; audited."""
    _export_records("policies", out_file, actor)


@export_app.command("claims")
def export_claims(out_file: Path = RECORDS_OUT, actor: str | None = RECORDS_ACTOR) -> None:
    """Write every claim to a CSV file ``journeys import claims`` takes; audited."""
    _export_records("claims", out_file, actor)


def purge(
    older_than: str = retention_option("--older-than", help="Retention period, e.g. 3y, 18m, 400d (at most 100y)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count who would be anonymised; change nothing."),
    actor: str | None = typer.Option(None, "--actor", help="Who runs the purge (audited; default: login name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Anonymise customers past retention: no policy in force and no activity for the period."""
    from store.db import database_url
    from store.retention import RetentionError
    from store.retention import purge as run_purge

    with _failing_on("purge", RetentionError):
        report = run_purge(database_url(), older_than, dry_run=dry_run, actor=actor)
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would anonymise" if dry_run else "anonymised"
    line = f"{verb} {report.customers} customers with no policy in force and no activity since {report.cutoff:%Y-%m-%d}"
    if not dry_run:
        line += (f"; cancelled {report.cancelled_touches} planned touches and {report.cancelled_tasks} open tasks, "
                 f"{report.exited_enrollments} enrollments exited")
    out.print(line, markup=False)
