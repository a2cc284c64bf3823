"""``journeys seed`` and ``journeys import``: data into the store.

Output rules: summaries go to stdout, per-row problems to stderr as ``FILE:LINE: reason``;
no phone number, e-mail address or ID number is ever printed unmasked.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

import typer

from engine.cli.arguments import MAX_SEED, day_option, output_file, whole_option, writing
from engine.cli.output import err, fail, out


def register(app: typer.Typer) -> None:
    app.command("seed")(seed)
    app.command("import")(import_file)


def seed(
    customers: int = whole_option(..., "--customers", "-n", low=0, high=10_000_000, help="How many customers to add"),
    seed_value: int = whole_option(0, "--seed", "-s", low=0, high=MAX_SEED,
                                   help="Random seed: same N, seed and as-of → same book"),
    as_of: date | None = day_option(None, "--as-of", help="Date the book is generated around (default today, UTC)."),
    chunk: int = whole_option(5000, "--chunk", low=1, high=100_000, help="Customers per transaction"),
) -> None:
    """Add a deterministic synthetic book (customers, policies, claims, tiers) to the database.

    A database that already holds a seeded book is added to: customer numbers continue
    after the highest seeded one (SEED-CUS000000001, ...).
    """
    from engine.demo.seeding import SeedError, seed_book
    from engine.loop.progress import Steps
    from store.db import database_url

    added = 0

    def advanced(n: int) -> None:
        nonlocal added
        added += n
        steps.note(f"{added:,} of {customers:,} customers")

    # Steps, not a bare Rich bar: a bar is not drawn in a pipe or a log, where a large book then
    # printed nothing for minutes; Steps writes a line there every few seconds (on stderr, so stdout
    # carries only the summary).
    with Steps(err, "seed", indent="") as steps:
        try:
            stats = seed_book(
                database_url(), customers, seed_value, as_of=as_of, chunk_size=chunk, progress=advanced,
            )
        except SeedError as exc:
            err.print(f"seed: {exc}", markup=False)
            raise typer.Exit(2) from None
    rate = stats.rows / stats.seconds if stats.seconds else 0.0
    out.print(
        f"seeded {stats.customers} customers (SEED-CUS{stats.first_number:09d}..{stats.last_number:09d}), "
        f"{stats.policies} policies, {stats.claims} claims, {stats.tier_changes} tier changes "
        f"in {stats.seconds:.1f} s ({rate:,.0f} rows/s)",
        markup=False,
    )
    if stats.customers:
        mix = ", ".join(f"{t} {stats.tiers.get(t, 0)}" for t in ("diamond", "platinum", "gold", "silver", "potential"))
        out.print(f"tiers: {mix}", markup=False)


class Kind(StrEnum):
    customers = "customers"
    policies = "policies"
    claims = "claims"


def import_file(
    kind: Kind = typer.Argument(..., help="What the file holds: customers, policies or claims."),
    file: Path = typer.Argument(..., help="CSV file, header on line 1 (columns: docs/import.md)."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Where to write the rejected rows (default: FILE.rejects.csv)."
    ),
    encoding: str = typer.Option("utf-8-sig", "--encoding", help="Text encoding of the file (e.g. gbk)."),
    assume_tz: str = typer.Option(
        "Asia/Shanghai", "--assume-tz", help="Time zone of date-times written without an offset."
    ),
) -> None:
    """Import (upsert by external_id) customers, policies or claims from a CSV file.

    Exit code 0: every row imported (or skipped on purpose: an anonymised customer in an export);
    1: some rows rejected (the good ones are imported); 2: the file cannot be used (nothing imported).
    """
    from store.clock import known_zone
    from store.db import database_url
    from store.importing import ImportFileError, Rejected, default_rejects_path, import_csv
    from store.importing.reading import encoding_problem

    shown = str(file)
    # import_csv would blame the file for them ("FILE: unknown time zone"); it is the option that is wrong.
    if not known_zone(assume_tz):
        raise fail(f"--assume-tz: unknown time zone {assume_tz!r} (e.g. Asia/Shanghai, UTC)")
    if (wrong := encoding_problem(encoding)) is not None:
        raise fail(f"--encoding: {wrong}")
    # A rejects file is written only if a row is bad, after good ones went in: a --rejects path it
    # cannot be written to is refused now, not found out half-way. The default one, beside the
    # input, is not checked: a file of good rows imports from a read-only folder.
    if rejects is not None:
        output_file(rejects, "--rejects")
    rejects_file = rejects if rejects is not None else default_rejects_path(file)

    def report_row(row: Rejected) -> None:  # a rejected row, or a Skipped one (its reason says so)
        err.print(f"{shown}:{row.line}: {row.reason}", markup=False)

    try:
        with writing("--rejects", rejects_file):
            report = import_csv(
                kind.value, file, database_url(), rejects, encoding=encoding, assume_tz=assume_tz,
                on_reject=report_row, on_skip=report_row,
            )
    except ImportFileError as exc:
        raise fail(f"{shown}: {exc}; nothing imported") from None
    skipped = f"skipped {len(report.skipped)}, " if report.skipped else ""
    summary = (
        f"{shown}: {report.rows} rows; imported {report.inserted} new, updated {report.updated}, "
        f"unchanged {report.unchanged}, {skipped}rejected {len(report.rejected)}"
    )
    if report.rejects_path is not None:
        summary += f" (rejected rows in {report.rejects_path})"
    out.print(summary, markup=False)
    raise typer.Exit(report.exit_code)
