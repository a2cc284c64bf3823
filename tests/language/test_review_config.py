"""``journeys validate`` checks ``config/review.yaml`` as it checks tiers.yaml and delivery.yaml:
before, ``categories: {marketing: maybe, service: [1]}`` still printed "configuration valid"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import build_app

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "journeys" / "silver-weekly-push.yaml"

# (categories line, the problems each at line:column with the words it holds)
CASES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "maybe and a list": ("categories: {marketing: maybe, service: [1]}",
                         [(":1:25:", "wrong type for 'marketing'"), (":1:41:", "wrong type for 'service'")]),
    "a number for true": ("categories: {marketing: 1}", [(":1:25:", "wrong type for 'marketing'")]),
    "a misspelt category": ("categories: {markting: true}",
                            [(":1:14:", "unknown journey category 'markting': journey categories are")]),
    "an unknown field": ("categorys: {marketing: true}", [(":1:1:", "unknown field 'categorys'")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_review_configuration_errors_point_into_the_file(case: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    line, expected = CASES[case]
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "review.yaml").write_text(line + "\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    result = CliRunner().invoke(build_app(), ["validate", "--no-cache", str(SHIPPED)])
    assert result.exit_code == 1, result.output
    found = [row for row in result.output.splitlines() if "review.yaml:" in row]
    assert len(found) == len(expected), result.output
    for row, (where, words) in zip(sorted(found), expected, strict=True):
        assert where in row and words in row, row


def test_shipped_and_absent_review_configuration_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    for _ in ("shipped", "absent"):
        result = CliRunner().invoke(build_app(), ["validate", "--no-cache", str(SHIPPED)])
        assert result.exit_code == 0, result.output
        (config / "review.yaml").unlink(missing_ok=True)
