"""A condition comparing an event's coded field with a code its type does not send is warned about.

``{field: event.data.direction, op: eq, value: downgrade}`` on tier.changed, whose words in
config/events.yaml are ``up`` and ``down``, was accepted and never matched: a tier-down retention
journey that nobody entered, and nothing said why. ``journeys validate`` now warns at the value,
naming the codes (and the nearest); the file stays valid, since another system may send a code the
words do not name yet. Every shipped journey compares only with known codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language.condition_values import uncoded_values
from engine.language.journey_model import Condition
from engine.language.validation import validate_journey_file
from store.models import TIERS
from tests.plan_support import write_templates

JOURNEY = """\
id: tier-down
name: Tier down
category: service
entry:
  event:
    type: tier.changed
    when: {{field: event.data.direction, op: eq, value: {direction}}}
steps:
  - id: call
    branch:
      cases:
        - when: {{field: event.data.to_tier, op: in, value: [{to_tiers}]}}
          goto: done
      otherwise: done
  - id: done
    exit: {{reason: done}}
"""


def warnings_of(tmp_path: Path, direction: str, to_tiers: str) -> list[str]:
    write_templates(tmp_path / "templates", [])
    path = tmp_path / "tier-down.yaml"
    path.write_text(JOURNEY.format(direction=direction, to_tiers=to_tiers), encoding="utf-8")
    loaded, problems = validate_journey_file(path, tmp_path / "templates")
    assert problems == [] and loaded is not None  # a warning rejects nothing
    return [f"{w.line}:{w.column}: {w.message}" for w in loaded.warnings]


def test_a_code_the_type_does_not_send_is_warned_at_its_value(tmp_path: Path) -> None:
    assert warnings_of(tmp_path, "down", "silver, potential") == []
    [direction, tier] = warnings_of(tmp_path, "downgrade", "silver, potentail")
    assert direction.startswith("7:56: warning: 'downgrade' is not a code of event.data.direction")
    assert "(did you mean 'down'?)" in direction and "'eq' never holds" in direction
    assert tier.startswith("12:69: warning: 'potentail' is not a code of event.data.to_tier")


@settings(max_examples=100, deadline=None)
@given(value=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
       op=st.sampled_from(["eq", "ne", "in", "not_in"]))
def test_the_warning_comes_exactly_for_values_outside_the_words(value: str, op: str) -> None:
    cond = Condition.model_validate({"field": "event.data.to_tier", "op": op,
                                     "value": [value] if op in ("in", "not_in") else value})
    warned = list(uncoded_values(cond, ("when",), {"tier.changed"}))
    assert bool(warned) is (value not in TIERS)
    # A field whose type gives no words (free text) is never warned about.
    free = Condition.model_validate({"field": "event.data.text", "op": "eq", "value": value})
    assert list(uncoded_values(free, ("when",), {"complaint.filed"})) == []


@pytest.mark.parametrize("field", ["event.data.platform", "event.data.survey"])
def test_a_field_worded_by_one_type_and_not_another_stays_open(field: str) -> None:
    cond = Condition.model_validate({"field": field, "op": "eq", "value": "kiosk"})
    assert list(uncoded_values(cond, ("when",), {"app.login", "survey.answered"})) == []
