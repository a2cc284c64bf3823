"""A value of the wrong shape is refused with the form to write instead, and that form is accepted.

Before, ``goal: policy.renewed`` was refused as "input should be a valid dictionary or instance of
Goal", naming a class the author never sees; ``when: "event.data.nps <= 6"`` as one of Condition;
three offsets in one list as "should be a valid string". Each now says what to write, with the
author's own value in it, and writing that makes the file valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.language.test_authoring_mistakes import BASE, project, rejected, validate  # noqa: F401

ENTRY = "date: {anchor: policy.expiry_date, offset: -30d, at: \"10:00\"}"
CASES = [
    # (what the author wrote, in place of, the words of the message)
    ("goal: policy.renewed\nsteps:", "steps:", "write {event: policy.renewed}"),
    ('      when: "event.data.policy_id != P1"', "      when: {field: event.data.policy_id, op: exists}",
     "a condition is data, not an expression: write {field: event.data.policy_id, op: ne, value: P1}"),
    ('        - when: "customer.tier == gold"', "        - when: {field: customer.tier, op: eq, value: gold}",
     "write {field: customer.tier, op: eq, value: gold}"),
]


@pytest.mark.parametrize(("new", "old", "words"), CASES, ids=["goal", "wait_for when", "branch when"])
def test_the_message_gives_the_form_and_the_form_is_accepted(project: Path, new: str, old: str,  # noqa: F811
                                                              words: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    output = rejected(project, text, (new.splitlines()[0].strip(), words))
    assert "instance of" not in output
    written = re.search(r"write (\{.*\})$", next(line for line in output.splitlines() if words in line))
    assert written is not None
    fixed = text.replace(new.split(":", 1)[1].split("\n")[0].strip(), written.group(1), 1)
    code, again, _ = validate(project, fixed)
    assert code == 0, again


def test_three_offsets_in_one_entry_are_told_to_wait_for_the_others(project: Path) -> None:  # noqa: F811
    text = BASE.replace(ENTRY, "date: {anchor: policy.expiry_date, offset: [-30d, -7d], at: \"10:00\"}", 1)
    rejected(project, text, ("offset: [-30d", "one offset per entry"), ("offset: [-30d", "wait: {until: {anchor:"))


SPLIT = """\
  - id: ab
    split:
      variants:
        - {name: a, percent: 45%, goto: remind}
        - {name: b, percent: 45, goto: done}
      holdout: 10%
"""


def test_a_share_with_a_percent_sign_and_a_working_day_in_words_are_told_the_form(project: Path) -> None:  # noqa: F811
    text = BASE.replace("steps:\n", "steps:\n" + SPLIT, 1).replace(
        "wait: {until: {anchor: policy.expiry_date, offset: -3d, at: \"10:00\"}}", "wait: {until: next working day}", 1)
    rejected(project, text, ("percent: 45%", "write the number without %: percent: 45"),
             ("holdout: 10%", "write the number without %: holdout: 10"),
             ("until: next working day", "for the next working day write until: next_working_day"))
    fixed = text.replace("45%", "45").replace("10%", "10").replace("next working day", "next_working_day")
    code, output, _ = validate(project, fixed)
    assert code == 0, output
