"""``journeys validate`` and ``journeys schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from engine.cli.output import err, out
from engine.language.journey_model import Journey
from engine.language.validation import validate


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("schema")(schema_command)


def validate_command(
    paths: list[Path] = typer.Argument(None, help="Journey files or folders (default: journeys/)."),
) -> None:
    """Check journey files, the templates they use and the tier/delivery configuration."""
    report = validate(paths or None)
    for problem in report.problems:
        err.print(str(problem), markup=False)
    for loaded in report.journeys:
        j = loaded.journey
        steps = ", ".join(s.kind for s in j.steps)
        tiers = ",".join(j.audience.tiers) if j.audience.tiers else "all tiers"
        out.print(
            f"ok  {loaded.path}: {j.id} v{loaded.version[:8]} · {j.category} · {j.entry.kind} · {tiers} · "
            f"{len(j.steps)} steps ({steps})",
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
    schema = Journey.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Service Journeys journey file"
    print(json.dumps(schema, ensure_ascii=False, indent=2))
