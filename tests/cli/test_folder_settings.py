"""A folder setting (JOURNEYS_DIR, JOURNEYS_TEMPLATES_DIR, JOURNEYS_CONFIG_DIR) that names no folder is
one line naming the variable, exit 2, for every command that reads the programme (docs/cli.md: a setting
at fault). A mistyped JOURNEYS_TEMPLATES_DIR was 85 lines of every journey's templates "not under
templates/", a mistyped JOURNEYS_CONFIG_DIR "configuration file not found" beside journeys judged
valid, and neither named the variable. Run as the installed command."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.cli.cli_process import run_journeys

COMMANDS = {
    "validate": ["validate"],
    "plan": ["plan", "--at", "2026-12-01T12:00+08:00", "--dry-run"],
    "explain": ["explain", "C1", "--at", "2026-12-01T12:00+08:00"],
    "simulate": ["simulate", "--from", "2026-12-01", "--to", "2026-12-02"],
    "serve": ["serve", "--port", "{port}"],  # refused before it listens
    "run": ["run"],  # refused before Prefect's engine starts
    "dispatch": ["dispatch", "--once"],
}
DEFAULTS = {"JOURNEYS_DIR": "journeys", "JOURNEYS_TEMPLATES_DIR": "templates", "JOURNEYS_CONFIG_DIR": "config"}
CASES = [("validate", setting) for setting in DEFAULTS] + [
    (command, "JOURNEYS_TEMPLATES_DIR") for command in ("plan", "explain", "simulate", "serve", "run", "dispatch")]


@pytest.mark.parametrize(("command", "setting"), CASES)
def test_a_folder_setting_that_names_no_folder_is_one_line(db_url: str, tmp_path: Path, command: str,
                                                           setting: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = str(probe.getsockname()[1])
    done = run_journeys(*(a.format(port=port) for a in COMMANDS[command]), cwd=tmp_path,
                        env={"JOURNEYS_DATABASE_URL": db_url, setting: "tmplates",
                             "JOURNEYS_CACHE_DIR": str(tmp_path / "cache"), "JOURNEYS_SECRET_KEY": "a lasting key"})
    assert (done.code, done.error_lines) == (2, [
        f"{setting}=tmplates: no such folder (a relative path is read from the working directory; "
        f"unset it for the project's own {DEFAULTS[setting]}/)"]), done.stderr


def test_a_folder_setting_that_names_a_file_says_so(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "journeys.yaml").write_text("id: x\n", encoding="utf-8")
    done = run_journeys("validate", cwd=tmp_path, env={"JOURNEYS_DIR": "journeys.yaml",
                                                       "JOURNEYS_CACHE_DIR": str(tmp_path / "cache")})
    assert (done.code, done.error_lines) == (2, [
        "JOURNEYS_DIR=journeys.yaml: not a folder (a relative path is read from the working directory; "
        "unset it for the project's own journeys/)"]), done.stderr


def test_an_unknown_template_names_the_templates_folder_in_use(tmp_path: Path) -> None:
    """It said "no X/meta.yaml under templates/" whatever JOURNEYS_TEMPLATES_DIR named."""
    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "templates", tmp_path / "message-templates")
    (tmp_path / "journeys").mkdir()
    journey = (root / "journeys" / "silver-weekly-push.yaml").read_text(encoding="utf-8")
    (tmp_path / "journeys" / "silver-weekly-push.yaml").write_text(
        journey.replace("template: silver_weekly_push", "template: silver_weekly_psh"), encoding="utf-8")
    done = run_journeys("validate", "journeys", cwd=tmp_path, env={
        "JOURNEYS_DIR": "journeys", "JOURNEYS_TEMPLATES_DIR": "message-templates",
        "JOURNEYS_CONFIG_DIR": str(root / "config"), "JOURNEYS_CACHE_DIR": str(tmp_path / "cache")})
    unknown = [line for line in done.error_lines if "unknown template" in line]
    assert unknown and all("no silver_weekly_psh/meta.yaml under message-templates/ (known: " in line
                           for line in unknown), done.stderr
