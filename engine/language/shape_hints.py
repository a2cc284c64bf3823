"""What to write instead, when a journey file gives a value of the wrong shape.

pydantic says "Input should be a valid dictionary or instance of Goal": true, but it names a class
the author never sees and not the form to write. An author who writes ``goal: policy.renewed``,
``when: "event.data.nps <= 6"`` or three offsets in one list is told here the form that works,
with their own value in it where it fits.
"""

from __future__ import annotations

import re
from typing import Any

# The form of each mapping a journey file holds, as the guide writes it (journeys/README.md).
FORMS: dict[str, str] = {
    "Goal": "{event: policy.renewed}",
    "Condition": "{field: customer.tier, op: eq, value: gold}",
    "EventEntry": "{type: survey.answered}",
    "ScheduleEntry": '{cron: "0 10 * * MON"}',
    "DateEntry": '{anchor: policy.expiry_date, offset: -30d, at: "10:00"}',
    "Entry": "schedule:, date: or event: below it",
    "Reentry": "{allowed: true, per: occurrence}",
    "Audience": "{tiers: [gold, platinum]}",
    "Cap": "{count: 1, window: 30d}",
    "Send": "{channels: [wechat, sms], template: renewal_reminder}",
    "Task": "{queue: renewal, priority: high, due_within: 2d, script: renewal_callback}",
    "WaitFor": "{event: policy.renewed, timeout: 10d, on_event: renewed, on_timeout: escalate}",
    "Branch": "{cases: [{when: {field: customer.tier, op: eq, value: gold}, goto: call}], otherwise: done}",
    "Split": "{variants: [{name: a, percent: 50, goto: x}, {name: b, percent: 50, goto: y}]}",
    "Exit": "{reason: done, label: 已完成 / Done}",
    "Update": "{field: customer.attributes.care_pack_sent, value: true}",
    "Webhook": "{target: crm, template: crm_case_opened}",
    "AnchoredMoment": '{anchor: policy.expiry_date, offset: -3d, at: "10:00"}',
}

_COMPARISONS = {"<=": "le", ">=": "ge", "<": "lt", ">": "gt", "==": "eq", "=": "eq", "!=": "ne"}
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>|=)\s*(\S.*?)\s*$")


def _as_condition(text: str) -> str | None:
    """``event.data.nps <= 6`` as the condition it means, if it reads as one comparison."""
    found = _EXPRESSION.match(text)
    if found is None:
        return None
    field, sign, value = found.groups()
    return f"{{field: {field}, op: {_COMPARISONS[sign]}, value: {value}}}"


def mapping_hint(message: str, got: Any) -> str | None:
    """For "should be a valid dictionary or instance of <Model>": the form to write, with the author's
    own text in it where it is plainly the one value the mapping needs."""
    named = re.search(r"instance of (\w+)", message)
    model = named.group(1) if named else None
    if model is None or model not in FORMS:
        return None
    if isinstance(got, str):
        if model == "Condition":
            written = _as_condition(got)
            if written is not None:
                return f"a condition is data, not an expression: write {written}"
        own = {"Goal": f"{{event: {got}}}", "EventEntry": f"{{type: {got}}}",
               "ScheduleEntry": f'{{cron: "{got}"}}'}.get(model)
        if own is not None:
            return f"write {own}"
    return f"write a mapping, e.g. {FORMS[model]}"


# A list where one value goes: what to write instead, by field.
_ONE_VALUE = {
    "offset": "one offset per entry; for a series of reminders enter at the first and wait until the "
              "same anchor with each further offset, e.g. wait: {until: {anchor: policy.premium_due_date, "
              'offset: -7d, at: "10:00"}}',
    "at": "one time of day per entry or wait",
    "template": "one template per step; write each message as its own step",
    "event": "one event type; write a branch after the wait_for, or a wait_for per event",
}


def value_hint(name: str, got: Any) -> str | None:
    """For a list given where the field takes one value, or a share written with a percent sign."""
    if isinstance(got, str) and re.fullmatch(r"\s*\d+\s*%\s*", got):
        return f"write the number without %: {name}: {got.strip().rstrip('%').strip()}"
    if not isinstance(got, list):
        return None
    return _ONE_VALUE.get(name, "give one value, not a list")
