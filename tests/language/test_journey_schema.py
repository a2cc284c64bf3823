"""The journey JSON Schema an editor uses: a description and an example for every field, enums
for the closed lists (from the files in force) and patterns for durations and times."""

from __future__ import annotations

import re
from typing import Any

from engine.language import event_types
from engine.language.journey_model import DATE_ANCHORS, OPERATORS
from engine.language.journey_schema import POSITIVE_DURATION_PATTERN, TIME_PATTERN, journey_schema
from store.models import CHANNELS, TIERS


def _properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {f"Journey.{k}": v for k, v in schema["properties"].items()}
    for model, definition in schema["$defs"].items():
        out.update({f"{model}.{k}": v for k, v in definition.get("properties", {}).items()})
    return out


def _strings(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema] if schema.get("type") == "string" else []
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        found.extend(_strings(option))
    if isinstance(schema.get("items"), dict):
        found.extend(_strings(schema["items"]))
    return found


def test_every_field_has_a_description_and_an_example() -> None:
    props = _properties(journey_schema())
    assert len(props) > 80
    lacking = [name for name, p in props.items() if not p.get("description") or not p.get("examples")]
    assert lacking == []


def test_closed_lists_are_enums_and_free_text_has_patterns() -> None:
    props = _properties(journey_schema())

    def enum_of(name: str) -> list[str]:
        return next(s["enum"] for s in _strings(props[name]) if "enum" in s)

    assert enum_of("Audience.tiers") == list(TIERS)
    assert enum_of("Send.channels") == list(CHANNELS)
    assert enum_of("Condition.op") == list(OPERATORS)
    assert enum_of("EventEntry.type") == sorted(event_types.current())
    assert "renewal" in enum_of("Task.queue")
    anchor = next(s for s in _strings(props["DateEntry.anchor"]) if "anyOf" in s)
    assert anchor["anyOf"][0]["enum"] == list(DATE_ANCHORS)
    assert re.match(anchor["anyOf"][1]["pattern"], "customer.attributes.vehicle_inspection_due")
    assert any(s.get("pattern") == POSITIVE_DURATION_PATTERN for s in _strings(props["WaitFor.timeout"]))
    assert any(s.get("pattern") == TIME_PATTERN for s in _strings(props["DateEntry.at"]))
    for good, bad in (("10:00", "25:00"), ("23:59", "9:00")):
        assert re.match(TIME_PATTERN, good) and not re.match(TIME_PATTERN, bad)
