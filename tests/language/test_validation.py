"""`journeys validate`: each kind of mistake, placed into a copy of a shipped journey file,
is rejected with exit 1 and a message naming that file and the offending line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "journeys" / "silver-weekly-push.yaml"

runner = CliRunner()


def run_validate(*args: str) -> tuple[int, str]:
    result = runner.invoke(build_app(), ["validate", *args])
    return result.exit_code, result.output  # stdout and stderr together


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in file")


def test_shipped_journeys_are_valid() -> None:
    code, output = run_validate(str(ROOT / "journeys"))
    assert code == 0, output
    assert "silver-weekly-push" in output
    assert "journeys valid" in output


def _write(tmp_path: Path, text: str) -> Path:
    target = tmp_path / "journeys" / SHIPPED.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


BASE = SHIPPED.read_text(encoding="utf-8")

# (name, text transform, the text that marks the offending line in the result, words the message must contain)
MISTAKES: list[tuple[str, str, str, str, list[str]]] = [
    ("unknown field", "category: marketing", "category: marketing\ncolour: red", "colour: red",
     ["unknown field", "colour"]),
    ("wrong type", "priority: 40", "priority: [40]", "priority: [40]", ["priority"]),
    ("unknown template", "template: silver_weekly_push", "template: silver_weekly_pusj",
     "template: silver_weekly_pusj", ["unknown template", "silver_weekly_pusj"]),
    ("unknown tier", "tiers: [silver]", "tiers: [silvr]", "tiers: [silvr]", ["unknown tier", "silvr"]),
    ("bad duration", "after: 6d", "after: 6days", "after: 6days", ["bad duration", "6days"]),
    ("duration over a century", "after: 6d", "after: 36501d", "after: 36501d", ["longer than 100 years"]),
    ("bad cron", 'cron: "0 10 * * MON"', 'cron: "0 25 * * MON"', 'cron: "0 25', ["bad cron"]),
    ("unknown channel", "wechat, sms]", "wechat, fax]", "wechat, fax]",
     ["unknown channel", "fax"]),
    ("unreachable step", "    exit: {reason: sent, label: 已发送 / Message sent}",
     "    exit: {reason: sent, label: 已发送 / Message sent}\n  - id: orphan\n    wait: 1d",
     "- id: orphan", ["never reached", "orphan"]),
    ("condition on unknown field", "  tiers: [silver]",
     "  tiers: [silver]\n  when: {field: customer.favourite_colour, op: eq, value: red}",
     "customer.favourite_colour", ["unknown field", "customer.favourite_colour"]),
    ("YAML syntax", "  tiers: [silver]", "  tiers: [silver", "tiers: [silver", ["YAML syntax"]),
]


@pytest.mark.parametrize(("name", "old", "new", "marker", "words"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_names_file_and_line(
    tmp_path: Path, name: str, old: str, new: str, marker: str, words: list[str]
) -> None:
    assert old in BASE, f"fixture drifted from the shipped file: {old!r}"
    text = BASE.replace(old, new, 1)
    path = _write(tmp_path, text)
    code, output = run_validate(str(path))
    assert code == 1, output
    expected_line = line_of(text, marker)
    problem_lines = [line for line in output.splitlines() if line.startswith(f"{path}:")]
    assert problem_lines, output
    first = problem_lines[0]
    reported_line = int(first.split(":")[1])
    if name == "YAML syntax":
        # The parser notices an unclosed flow sequence where the next token breaks it.
        assert expected_line <= reported_line <= expected_line + 2, output
    else:
        assert reported_line == expected_line, output
    for word in words:
        assert word in first, output


def test_duplicate_journey_id_is_reported_on_both_files(tmp_path: Path) -> None:
    """Validation cannot tell which file is in force (the registry can: tests/language/test_duplicate_journey_ids.py):
    it names both, each at its id line, whatever order the files sort in."""
    first = _write(tmp_path, BASE)
    for name in ("zz-copy.yaml", "aa-copy.yaml"):
        second = first.parent / name
        second.write_text(BASE, encoding="utf-8")
        code, output = run_validate(str(first.parent))
        assert code == 1
        reported = sorted(line for line in output.splitlines() if "duplicate journey id" in line)
        line = line_of(BASE, "id: silver-weekly-push")
        assert [r.split(": duplicate")[0] for r in reported] == sorted([f"{second}:{line}:5", f"{first}:{line}:5"])
        second.unlink()


def test_one_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    good = _write(tmp_path, BASE)
    bad = good.parent / "broken.yaml"
    bad.write_text(BASE.replace("id: silver-weekly-push", "id: other-push").replace("priority: 40", "priority: high"))
    code, output = run_validate(str(good.parent))
    assert code == 1
    assert f"ok  {good}" in output
    assert f"{bad}:" in output and "priority" in output


def test_tier_configuration_errors_point_into_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    tiers = config / "tiers.yaml"
    text = tiers.read_text(encoding="utf-8").replace("  risk: 0.20 ", "  risk: 0.25 ")
    tiers.write_text(text, encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    code, output = run_validate(str(SHIPPED))
    assert code == 1
    assert "weights must add up to 1" in output and "tiers.yaml:" in output


def test_schema_command_prints_json_schema() -> None:
    import json

    result = runner.invoke(build_app(), ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "Service Journeys journey file"
    assert {"id", "entry", "steps", "category"} <= set(schema["properties"])


def test_undefined_template_variable_is_reported_at_the_template_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    sms = templates / "silver_weekly_push" / "sms.zh-CN.j2"
    sms.write_text("{{ customer.name }}您好\n本周：{{ customer.favourite_colour }}\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(templates))
    code, output = run_validate(str(SHIPPED))
    assert code == 1
    problems = [line for line in output.splitlines() if line.startswith(f"{sms}:")]
    assert problems and problems[0].startswith(f"{sms}:2:"), output
    assert "favourite_colour" in problems[0]


CLAIM_JOURNEY = ROOT / "journeys" / "claim-settled-health-consultation.yaml"
GATE = "  when: {field: claim.product_line, op: ne, value: property}"
SHIPPED_GATE = ("  when:\n"
                "    any:                                # a claim with no known product line is offered it too\n"
                "      - {field: claim.product_line, op: missing}\n"
                "      - {field: claim.product_line, op: ne, value: property}")


def test_a_gate_on_a_field_the_record_may_lack_warns_but_the_file_is_accepted(tmp_path: Path) -> None:
    shipped = CLAIM_JOURNEY.read_text(encoding="utf-8")
    assert SHIPPED_GATE in shipped, "fixture drifted from the shipped file"
    text = shipped.replace(SHIPPED_GATE, GATE)  # the gate as an author writes it first, saying nothing of a lack
    path = tmp_path / "journeys" / CLAIM_JOURNEY.name
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    code, output = run_validate(str(path))
    assert code == 0, output
    assert f"ok  {path}" in output and "1 journeys valid" in output
    [warning] = [line for line in output.splitlines() if "warning:" in line]
    assert warning.startswith(f"{path}:{line_of(text, GATE)}:17: warning: claim.product_line may be missing"), output
    assert "'ne property' passes" in warning

    # Saying what should happen to a claim without a product line silences it.
    explicit = ("  when:\n    all:\n      - {field: claim.product_line, op: exists}\n"
                "      - {field: claim.product_line, op: ne, value: property}")
    path.write_text(text.replace(GATE, explicit), encoding="utf-8")
    code, output = run_validate(str(path))
    assert code == 0 and "warning:" not in output, output


def test_the_shipped_journeys_validate_without_a_warning() -> None:
    """The journeys authors copy from say what they mean: each gate on a field a record may lack tests it with
    exists or missing, and each task's due time reads as its queue's clock counts it. A new user's first
    validate shows no warning to wonder about."""
    code, output = run_validate(str(ROOT / "journeys"))
    assert code == 0, output
    assert [line for line in output.splitlines() if ": warning: " in line] == [], output
