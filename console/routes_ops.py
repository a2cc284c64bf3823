"""Ops pages: journeys with their validation status, and the explain/simulate/report tools.

The tools are the CLI's own commands, run in-process when another area has
registered them; until then the page says the tool is not available yet. They
are looked up lazily so that a missing or broken module never stops the console.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse

from console import csrf
from console.deps import user_with
from console.web import render
from store.masking import mask_text

router = APIRouter(dependencies=[Depends(csrf.protect)])

TOOLS: tuple[str, ...] = ("explain", "simulate", "report")
MAX_OUTPUT = 200_000


@dataclass(frozen=True)
class JourneyStatus:
    id: str
    name: str
    category: str
    path: str
    version: str


@router.get("/ops/journeys", response_class=HTMLResponse)
def journeys_page(request: Request) -> HTMLResponse:
    user = user_with(request, "journeys")
    from engine.language.validation import validate

    report = validate()
    journeys = [
        JourneyStatus(j.id, j.journey.name, j.journey.category, j.path, j.version)
        for j in sorted(report.journeys, key=lambda j: j.id)
    ]
    return render(request, "ops_journeys.html", user, journeys=journeys, problems=[str(p) for p in report.problems],
                  rejected=report.rejected_files, ok=report.ok, tools=TOOLS, available=available_tools())


def _cli_commands() -> dict[str, object]:
    try:
        import typer.main

        from engine.cli import build_app

        group = typer.main.get_command(build_app())
        return dict(getattr(group, "commands", {}))
    except Exception:  # another area's broken command module must not break this page
        return {}


def available_tools() -> set[str]:
    commands = _cli_commands()
    return {tool for tool in TOOLS if tool in commands}


def run_tool(tool: str, args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from engine.cli import build_app

    try:
        argv = shlex.split(args)
    except ValueError as exc:
        return 2, str(exc)
    result = CliRunner().invoke(build_app(), [tool, *argv])
    # CLI output may name customers; mask it like any log line before a person reads it.
    return result.exit_code, mask_text(result.output)[:MAX_OUTPUT]


def _tool_page(request: Request, tool: str, args: str, output: str | None, exit_code: int | None) -> HTMLResponse:
    user = user_with(request, "reports" if tool == "report" else "journeys")
    if tool not in TOOLS:
        raise HTTPException(status_code=404, detail="not_found")
    return render(request, "ops_tool.html", user, tool=tool, args=args, output=output, exit_code=exit_code,
                  available=tool in available_tools())


@router.get("/ops/tools/{tool}", response_class=HTMLResponse)
def tool_page(request: Request, tool: str) -> HTMLResponse:
    return _tool_page(request, tool, "", None, None)


@router.post("/ops/tools/{tool}", response_class=HTMLResponse)
def tool_run(request: Request, tool: str, args: Annotated[str, Form(max_length=1000)] = "") -> HTMLResponse:
    user_with(request, "reports" if tool == "report" else "journeys")
    if tool not in TOOLS:
        raise HTTPException(status_code=404, detail="not_found")
    if tool not in available_tools():
        return _tool_page(request, tool, args, None, None)
    code, output = run_tool(tool, args)
    return _tool_page(request, tool, args, output, code)
