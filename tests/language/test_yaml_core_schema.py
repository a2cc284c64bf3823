"""Plain scalars are read as YAML 1.2's core schema reads them, as the author wrote them: YAML 1.1 made
``yes``/``no``/``on``/``off`` switches, ``10:00`` the number 600 (base 60) and ``010`` the number 8."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.validation import validate_journey_file
from engine.language.yaml_lines import load_located

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("plain", "read"), [
    ("yes", "yes"), ("No", "No"), ("on", "on"), ("OFF", "OFF"), ("10:00", "10:00"), ("1:30", "1:30"),
    ("010", 10), ("1_000", "1_000"), ("true", True), ("False", False), ("40", 40), ("-3", -3),
    ("0x1F", 31), ("1.5", 1.5), ("1e3", 1000.0), ("~", None),
])
def test_a_plain_scalar_is_read_by_the_core_schema(plain: str, read: object) -> None:
    value = load_located(f"a: {plain}\n").data["a"]
    assert value == read and type(value) is type(read)


REPLY = """\
id: reply-yes
name: 回复 / Reply
category: service
entry:
  date: {anchor: customer.birthday, at: 10:00}
steps:
  - id: ask
    send: {channels: [sms], template: birthday_greeting}
  - id: next_morning
    wait: {until: 18:30}
  - id: listen
    wait_for: {event: message.replied, timeout: 3d, on_event: yes, on_timeout: no}
  - id: yes
    update: {field: customer.attributes.answer, value: yes}
  - id: check
    branch:
      cases:
        - when: {field: customer.attributes.vip, op: eq, value: on}
          goto: no
  - id: no
    exit: {reason: no}
"""


def test_yes_no_on_and_times_of_day_in_a_journey_are_what_the_author_wrote(tmp_path: Path) -> None:
    """Before: 'wrong type for on_event: ... (got True)', the id and reason too, and for the time of
    day 'wrong type for until-anchor ... (got 600)'; the update would have stored true and the
    branch compared the attribute with true."""
    path = tmp_path / "reply-yes.yaml"
    path.write_text(REPLY, encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert problems == [] and loaded is not None
    journey = loaded.journey
    assert journey.entry.date is not None and journey.entry.date.at == "10:00"
    wait = journey.step("next_morning").wait
    assert wait is not None and not isinstance(wait, str) and wait.until == "18:30"
    listen = journey.step("listen").wait_for
    assert listen is not None and (listen.on_event, listen.on_timeout) == ("yes", "no")
    update = journey.step("yes").update
    assert update is not None and update.value == "yes"
    branch = journey.step("check").branch
    assert branch is not None and branch.cases[0].when.value == "on"
    exit_ = journey.step("no").exit
    assert exit_ is not None and exit_.reason == "no"


def test_a_switch_written_yes_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "reply-yes.yaml"
    path.write_text(REPLY.replace("category: service\n", "category: service\nurgent: yes\n"), encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert loaded is None
    assert [(p.line, "urgent" in p.message) for p in problems] == [(4, True)], problems
