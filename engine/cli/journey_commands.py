"""``journeys validate`` and ``journeys schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from engine.cli.output import err, fail, out, refuse_missing_folders


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("schema")(schema_command)


def validate_command(
    paths: list[Path] = typer.Argument(None, help="Journey files or folders (default: journeys/)."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Validate from scratch instead of reusing the result for unchanged files "
        "(the result is still stored; the cache folder is JOURNEYS_CACHE_DIR, default ~/.cache/service-journeys)."),
) -> None:
    """Check journey files, the templates they use and the tier/delivery configuration."""
    # Imported here, not at the top: `journeys --help` must not pay for it, and a cached result
    # is printed without loading the validator at all.
    from engine.language.validation_cache import validation_result

    refuse_missing_folders()
    # A path that names nothing is a mistake on the command line, not a problem of a journey file (exit 1).
    for path in paths or ():
        if not path.exists():
            raise fail(f"{path}: no such file or folder")
    report = validation_result(paths or None, use_cache=not no_cache)
    for problem in report.problems:
        err.print(str(problem), markup=False)
    for warning in report.warnings:  # printed, but they reject nothing and do not change the exit code
        err.print(str(warning), markup=False)
    for j in report.journeys:
        tiers = ",".join(j.tiers) if j.tiers else "all tiers"
        out.print(
            f"ok  {j.path}: {j.id} v{j.version[:8]} · {j.category} · {j.entry} · {tiers} · "
            f"{len(j.steps)} step{'' if len(j.steps) == 1 else 's'} ({', '.join(j.steps)})",
            markup=False,
        )
    if report.problems:
        err.print(
            f"{len(report.problems)} problem(s); {len(report.rejected_files)} file(s) rejected, "
            f"{len(report.journeys)} valid",
            markup=False,
        )
        raise typer.Exit(1)
    out.print(f"{len(report.journeys)} journeys valid; tier and delivery configuration valid", markup=False)


def schema_command() -> None:
    """Print the JSON Schema of a journey file (for editor completion)."""
    from engine.language.journey_schema import journey_schema

    print(json.dumps(journey_schema(), ensure_ascii=False, indent=2))
