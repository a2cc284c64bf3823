"""Validation results cached on disk by content: hit when nothing changed, missed when a journey,
a template, a configuration file or the validator changed, and never trusted when damaged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language import journey_registry, validation, validation_cache
from engine.language.validation_cache import VALIDATOR_MODULES, cache_dir, inputs, validate_cached, validation_result

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = "gold-monthly-callback.yaml"
# gold-monthly-callback sends callback_missed by SMS and WeChat and uses gold_monthly_callback as its call script.
SMS_TEMPLATE = Path("callback_missed") / "sms.en.j2"


class Project:
    """A copy of the shipped journeys, templates and configuration, with a cache folder of its own."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.journeys = root / "journeys"
        self.templates = root / "templates"
        self.config = root / "config"
        self.cache = root / "cache"
        shutil.copytree(ROOT / "journeys", self.journeys)
        shutil.copytree(ROOT / "templates", self.templates)
        shutil.copytree(ROOT / "config", self.config)
        monkeypatch.setenv("JOURNEYS_DIR", str(self.journeys))
        monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(self.templates))
        monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(self.config))
        monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(self.cache))
        monkeypatch.chdir(root)
        self.journey = Path("journeys") / JOURNEY

    def entries(self) -> list[Path]:
        folder = self.cache / "validation"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def edit(self, path: Path, old: str, new: str) -> None:
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(tmp_path, monkeypatch)


def test_the_second_run_is_answered_from_the_cache(project: Project) -> None:
    first = validation_result([project.journey])
    assert not first.from_cache and first.ok
    assert [j.id for j in first.journeys] == ["gold-monthly-callback"]
    assert len(project.entries()) == 1

    second = validation_result([project.journey])
    assert second.from_cache
    assert (second.problems, second.rejected_files, second.journeys) == (
        first.problems, first.rejected_files, first.journeys)


def test_a_template_edit_invalidates_the_cached_result(project: Project) -> None:
    assert validation_result([project.journey]).ok
    assert validation_result([project.journey]).from_cache

    project.edit(project.templates / SMS_TEMPLATE, "{{", "{{ no_such_variable }}{{")
    after = validation_result([project.journey])
    assert not after.from_cache
    assert not after.ok and any("no_such_variable" in str(p) for p in after.problems), after.problems
    assert validation_result([project.journey]).from_cache  # and the new verdict is cached in turn


def test_journey_configuration_and_other_template_edits_invalidate_it(project: Project) -> None:
    validation_result([project.journey])

    project.edit(project.journeys / JOURNEY, "due_within: 7d", "due_within: 6d")
    assert not validation_result([project.journey]).from_cache

    project.edit(project.config / "tiers.yaml", "\n", "\n# a comment changes the key too\n")
    assert not validation_result([project.journey]).from_cache

    # Any template file counts (a template may include another): the whole folder is in the key.
    (project.templates / "callback_missed" / "notes.txt").write_text("new file", encoding="utf-8")
    assert not validation_result([project.journey]).from_cache
    assert validation_result([project.journey]).from_cache


def test_a_broken_journey_is_cached_as_rejected_and_shown_the_same(project: Project) -> None:
    project.edit(project.journeys / JOURNEY, "tiers: [gold]", "tiers: [gald]")
    runner = CliRunner()
    fresh = runner.invoke(build_app(), ["validate", str(project.journey)])
    cached = runner.invoke(build_app(), ["validate", str(project.journey)])
    assert fresh.exit_code == cached.exit_code == 1
    assert "unknown tier 'gald'" in fresh.output
    assert cached.output == fresh.output
    assert validation_result([project.journey]).from_cache


@pytest.mark.parametrize("damage", [
    "not json at all {",
    "[]",
    '{"format": 1, "key": "KEY", "result": {"problems": "none", "rejected_files": [], "journeys": []}}',
    '{"format": 1, "key": "KEY", "result": {"problems": [], "rejected_files": [], '
    '"journeys": [{"path": "x", "file": 99, "id": "x", "version": "x", "category": "service", '
    '"entry": "date", "tiers": null, "steps": []}]}}',
    '{"format": 1, "key": "another key", "result": {"problems": [], "rejected_files": [], "journeys": []}}',
])
def test_a_damaged_entry_is_ignored_and_rewritten(project: Project, damage: str) -> None:
    good = validation_result([project.journey])
    [entry] = project.entries()
    entry.write_text(damage.replace("KEY", entry.stem), encoding="utf-8")

    again = validation_result([project.journey])
    assert not again.from_cache
    assert again.journeys == good.journeys and again.ok
    assert json.loads(entry.read_text(encoding="utf-8"))["key"] == entry.stem
    assert validation_result([project.journey]).from_cache


def test_an_entry_that_lies_about_a_journey_is_not_put_in_force(project: Project) -> None:
    """The planner reads journeys from their files: an entry whose version is not the file's is refused."""
    validation_result([project.journey])
    [entry] = project.entries()
    data = json.loads(entry.read_text(encoding="utf-8"))
    data["result"]["journeys"][0]["version"] = "0" * 16
    entry.write_text(json.dumps(data), encoding="utf-8")

    report = validate_cached([project.journey])
    assert [j.version for j in report.journeys] == [validation.content_version(
        (project.journeys / JOURNEY).read_text(encoding="utf-8"))]


def test_the_planner_rebuilds_the_report_from_the_cache(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = validation.validate([project.journeys])
    validate_cached([project.journeys])  # stores the verdict

    monkeypatch.setattr(journey_registry, "_validated", {})  # a new process: nothing in memory
    monkeypatch.setattr(validation, "validate", _refuse)
    cached = journey_registry.validated_report(project.journeys)
    assert [(j.id, j.path, j.version, j.source, j.warnings) for j in cached.journeys] == [
        (j.id, j.path, j.version, j.source, j.warnings) for j in fresh.journeys]
    assert [j.journey for j in cached.journeys] == [j.journey for j in fresh.journeys]
    assert cached.problems == fresh.problems and cached.rejected_files == fresh.rejected_files
    assert cached.warnings == fresh.warnings
    assert cached.tiers == fresh.tiers and cached.delivery == fresh.delivery


def _refuse(*args: object, **kwargs: object) -> validation.Report:
    raise AssertionError("validated again although nothing changed")


def test_a_cache_that_cannot_be_written_only_means_no_cache(project: Project, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    blocker = project.cache.parent / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(blocker))
    assert validation_result([project.journey]).ok
    assert not validation_result([project.journey]).from_cache


def test_the_cache_lives_in_the_users_cache_folder_unless_configured(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    monkeypatch.delenv("JOURNEYS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "service-journeys" / "validation"
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" / "validation"


def test_the_key_depends_on_the_working_directory(project: Project, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Problems name files relative to where the command runs, so a result is not shared across folders."""
    here = inputs([project.journeys / JOURNEY]).key
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert inputs([project.journeys / JOURNEY]).key != here


def test_every_module_the_validator_loads_is_part_of_its_code_version() -> None:
    """A change to any project module validation imports must change the key."""
    code = ("import json, sys, engine.language.validation, engine.language.validation_cache; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('engine', 'channels', 'store', 'console'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
    assert sorted(set(loaded) - set(VALIDATOR_MODULES)) == []
    for name in VALIDATOR_MODULES:
        assert validation_cache._module_file(name).is_file(), name
