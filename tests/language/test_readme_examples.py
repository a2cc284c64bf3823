"""The YAML examples of journeys/README.md are valid: a whole journey as it stands, an ``entry:``
or ``steps:`` fragment inside an otherwise complete journey, an event type declaration against
config/events.yaml's model. A documented form that stopped working fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.event_types import EventTypesConfig
from engine.language.journey_model import Journey

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "journeys" / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL)
JOURNEY_FIELDS = {f.alias or name for name, f in Journey.model_fields.items()}

# The rest of a journey around a fragment; a policy anchor so that every documented scope is there.
SKELETON: dict[str, Any] = {
    "id": "readme-example", "name": "README example", "category": "service",
    "entry": {"date": {"anchor": "policy.expiry_date", "offset": "-30d", "at": "10:00"}},
    "steps": [{"id": "done", "exit": {}}],
}


def _kind(data: Any) -> str | None:
    if not isinstance(data, dict) or not data:
        return None
    if set(data) <= JOURNEY_FIELDS:
        return "journey"
    if all(re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+", str(k)) for k in data):
        return "event types"
    return None


EXAMPLES = [(i, block) for i, block in enumerate(BLOCKS) if _kind(yaml.safe_load(block)) is not None]


def test_the_new_forms_are_among_the_examples() -> None:
    text = "\n".join(block for _, block in EXAMPLES)
    for form in ("anchor: policy.start_date, every: year", "anchor: customer.attributes.vehicle_inspection_due",
                 "anchor: policy.premium_due_date", 'until: "10:00"', "until: next_working_day",
                 "until: {anchor: policy.expiry_date", "vehicle.inspection_due:", "type: vehicle.inspection_due"):
        assert form in text, form


@pytest.mark.parametrize(("index", "block"), EXAMPLES, ids=[f"block-{i}" for i, _ in EXAMPLES])
def test_each_example_is_valid(tmp_path: Path, index: int, block: str) -> None:
    data = yaml.safe_load(block)
    if _kind(data) == "event types":
        EventTypesConfig.model_validate(data)
        return
    journey = data if {"id", "steps"} <= set(data) else {**SKELETON, **data}
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(journey, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(path)])
    assert result.exit_code == 0, f"README block {index}:\n{block}\n{result.output}"
