"""Checking each journey's call scripts with the context its tasks will really have.

``template_check.check_templates`` renders every template with a sample context in which every
part is present, so a script that reads ``event.data`` passes even when the journey that uses it
starts on a schedule and its tasks have no event: the agent then got no script at all. Here each
task step's script is rendered the way the console renders it for that step's tasks:

- the triggering event is present only in event-entry journeys, with the fields the event
  catalogue gives that event type (``engine.language.catalogue.EVENT_TYPES``); an event type the
  catalogue does not know keeps the open sample data, since its fields cannot be known;
- the policy, claim and advisor stay present, as in the sample context: whether a customer has
  them is a matter of data, which the console reports on the task page when a render fails;
- ``outcome`` holds only the outcomes the step's queue offers (``config/queues.yaml``): a script telling
  the agent to record one the desk does not offer them (「已解决」 on a queue without ``resolved``) sends
  them looking for a button that is not there.

A failure is a ``Problem`` at the script file's line, naming the journey and step, and only when
the same file renders with the full sample context (otherwise ``check_templates`` reports it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from channels.template_files import LOCALES, template_file
from engine.language.catalogue import EVENT_TYPES, FieldKind
from engine.language.journey_model import Journey
from engine.language.problems import Problem, display_path
from engine.language.settings_model import QueuesConfig
from engine.language.template_context import EventView, JourneyView, sample_context
from engine.language.templates import Renderer, RenderError

# How Jinja names the key a dict lacks (``outcome.resolved`` on a queue without it).
_NAMED = re.compile(r"has no attribute '(\w+)'")
# A value of each field kind, as an event of that type would carry it.
_SAMPLE_VALUES: dict[FieldKind, Any] = {
    "str": "sample", "int": 3, "float": 1280.0, "bool": True, "date": datetime(2026, 11, 23, tzinfo=UTC).date(),
    "datetime": datetime(2026, 11, 23, 2, 0, tzinfo=UTC), "list": [], "any": "sample",
}


class _Loaded(Protocol):
    journey: Journey


def sample_event(event_type: str) -> EventView:
    """An event of ``event_type`` with every catalogue field of that type (open data for an unknown type)."""
    fields = EVENT_TYPES.get(event_type)
    if fields is None:
        return dataclasses.replace(sample_context().event or EventView(event_type), type=event_type)
    return EventView(event_type, {name: _SAMPLE_VALUES[kind] for name, kind in fields.items()},
                     datetime(2026, 11, 23, 2, 0, tzinfo=UTC))


def check_task_scripts(journeys: Iterable[_Loaded], templates_root: Path,
                       queues: QueuesConfig | None = None) -> list[Problem]:
    """``queues``: the desk's declarations (None: no file, every queue offers every outcome)."""
    rend = Renderer(templates_root, footer=None)
    desk = queues or QueuesConfig()
    problems: set[Problem] = set()
    for loaded in journeys:
        journey = loaded.journey
        event = sample_event(journey.entry.event.type) if journey.entry.event is not None else None
        for step in journey.steps:
            if step.task is None or not step.task.script:
                continue
            name = step.task.script
            for locale in LOCALES:
                path = template_file(templates_root, name, "task", locale)
                if not path.is_file():
                    continue
                full = sample_context(locale)
                shaped = dataclasses.replace(full, event=event,
                                             journey=JourneyView(journey.id, step.id, journey.category, "sample"))
                try:
                    rend.render_task_script(name, full, locale)
                except RenderError:
                    continue  # check_templates reports what fails even with every part present
                try:
                    rend.render_task_script(name, shaped, locale)
                except RenderError as exc:
                    why = ("its tasks have no triggering event (the journey's entry is a "
                           f"{journey.entry.kind})" if event is None else
                           f"its tasks' event is a {event.type}")
                    problems.add(Problem(display_path(path), exc.line or 1, 1,
                                         f"call script of journey {journey.id!r} step {step.id!r} cannot be "
                                         f"rendered: {exc.reason}; {why}"))
                    continue
                offered = desk.outcomes_of(step.task.queue)
                try:
                    rend.render_task_script(name, shaped, locale, outcomes=offered)
                except RenderError as exc:
                    named = _NAMED.search(exc.reason)
                    problems.add(Problem(display_path(path), exc.line or 1, 1, (
                        f"call script of journey {journey.id!r} step {step.id!r} names outcome "
                        f"{named.group(1) if named else '?'!r}, which queue {step.task.queue!r} does not offer; its "
                        f"agents may record {', '.join(offered)} (config/queues.yaml)")))
    return sorted(problems)
