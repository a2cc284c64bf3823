"""A task's ``due_within`` on a business-clock queue that reads otherwise than it runs is warned about.

On a business clock whole days count working days and the rest open hours (``engine.language.sla_clock``),
so ``23h`` (23 open hours, two and a half working days) is due later than ``1d``, and ``24h`` is one
working day, not 24 hours: a negative-survey callback "within 24 h" written on such a queue waits over a
weekend. Nothing told the author; ``journeys validate`` now warns at the value (the file stays valid).
The warning is checked against the clock itself: it comes exactly when the due time passes the next
whole working day's."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language.authoring_checks import business_due_note
from engine.language.settings_model import QueuesConfig
from engine.language.sla_clock import Clock
from engine.language.validation import validate_journey_file
from engine.language.work_calendar import current as current_calendar
from tests.plan_support import write_templates

DESK = QueuesConfig.model_validate({"queues": {"callbacks": {"clock": "business"}, "complaints": {"clock": "wall"}}})
CLOCK = Clock(DESK.business_hours, current_calendar())
MONDAY_OPENING = datetime(2026, 11, 16, 9, tzinfo=ZoneInfo("Asia/Shanghai"))


@settings(max_examples=300, deadline=None)
@given(days=st.integers(0, 5), hours=st.integers(0, 23), minutes=st.sampled_from([0, 30]))
def test_the_warning_comes_exactly_when_the_due_time_passes_the_next_whole_day(days: int, hours: int,
                                                                              minutes: int) -> None:
    if not (days or hours or minutes):
        return
    text = f"{days}d" * bool(days) + f"{hours}h" * bool(hours) + f"{minutes}m" * bool(minutes)
    window = timedelta(days=days, hours=hours, minutes=minutes)
    late = CLOCK.deadline(MONDAY_OPENING, window) > CLOCK.deadline(MONDAY_OPENING, timedelta(days=days + 1))
    note = business_due_note("callbacks", text, DESK)
    assert (note is not None) is late, (text, note)
    assert business_due_note("complaints", text, DESK) is None  # around the clock: as written


def test_whole_days_written_in_hours_are_named_for_what_they_are() -> None:
    assert "is 1 working day, not 24h around the clock: write 1d" in (business_due_note("callbacks", "24h", DESK) or "")
    assert "is 2 working days, not 48h" in (business_due_note("callbacks", "48h", DESK) or "")
    assert business_due_note("callbacks", "1d", DESK) is None
    assert business_due_note("callbacks", "6h", DESK) is None
    assert business_due_note("callbacks", "24h", None) is None  # no queues file: every queue is wall


def test_validate_warns_at_the_value_and_keeps_the_file(tmp_path: Path) -> None:
    write_templates(tmp_path / "templates", ["call"])
    path = tmp_path / "callback.yaml"
    path.write_text("""\
id: callback
name: Callback
category: service
entry:
  event: {type: survey.answered}
steps:
  - id: call
    task: {queue: callbacks, priority: high, due_within: 23h, script: call}
""", encoding="utf-8")
    loaded, problems = validate_journey_file(path, tmp_path / "templates", ("callbacks", "complaints"), DESK)
    assert problems == [] and loaded is not None
    [warning] = loaded.warnings
    assert (warning.line, warning.column) == (8, 58)  # at the value
    assert "23h of open time: due later than 1d (1 working day) would be; write 1d" in warning.message
