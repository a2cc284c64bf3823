"""When a ``wait`` step ends: after a duration, or at a moment named in the customer's local time.

- ``wait: 3d``: three days after the step began.
- ``wait: {until: "10:00"}``: the next 10:00 local time strictly after the step began (a step
  reached at 10:00 sharp waits a day).
- ``wait: {until: next_working_day, at: "10:00"}``: 10:00 (default ``at``: 10:00) on the first
  working day of the PRC work calendar after the local day the step began on.
- ``wait: {until: {anchor: policy.expiry_date, offset: -3d, at: "10:00"}}``: that moment from the
  date field in scope (the entry's policy or claim, a customer field or attribute; a birthday is
  the next one). A moment already past, or a date the customer or policy does not have, ends the
  wait at once: the step after it runs without waiting. ``on_non_working_day`` moves it off a day
  off as a date entry's fire (``engine.planning.occurrences.anchor_fire``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from engine.language import work_calendar
from engine.language.durations import parse_duration
from engine.language.journey_model import AnchoredMoment, Journey, WaitUntil
from engine.planning.occurrences import anchor_fire, as_anchor_date, birthday_in, clock, local_naive, place


def wait_end(wait: str | WaitUntil, since: datetime, tz: str, fact: Mapping[str, Any]) -> datetime:
    """The moment a wait that began at ``since`` ends, for a customer in ``tz`` with ``fact``
    (their facts with the entry's scope: ``policy.*``, ``claim.*``, ``customer.*``)."""
    if isinstance(wait, str):
        return since + parse_duration(wait)
    local = local_naive(since, tz)
    until = wait.until
    if isinstance(until, AnchoredMoment):
        return max(since, _anchored(until, since, tz, fact))
    if until == "next_working_day":
        day = work_calendar.next_working_day(local.date())
        return place(datetime.combine(day, clock(wait.at or "10:00")), tz)
    wanted = datetime.combine(local.date(), clock(until))
    if wanted <= local:
        wanted += timedelta(days=1)
    return place(wanted, tz)


def _anchored(until: AnchoredMoment, since: datetime, tz: str, fact: Mapping[str, Any]) -> datetime:
    day = as_anchor_date(fact.get(until.anchor))
    if day is None:
        return since
    if until.anchor == "customer.birthday":
        # The next birthday whose moment is still ahead (this year's, or next year's).
        year = local_naive(since, tz).year
        for candidate in (year, year + 1):
            due = anchor_fire(birthday_in(day, candidate), until.at, until.offset, tz, until.on_non_working_day)
            if due > since:
                return due
    return anchor_fire(day, until.at, until.offset, tz, until.on_non_working_day)


def anchor_fields(journey: Journey) -> set[str]:
    """The customer fields the journey's waits run until (to be loaded with its conditions' fields)."""
    return {s.wait.until.anchor for s in journey.steps
            if isinstance(s.wait, WaitUntil) and isinstance(s.wait.until, AnchoredMoment)
            and s.wait.until.anchor.startswith("customer.")}
