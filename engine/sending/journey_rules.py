"""What dispatch reads from the journey files themselves: the target of each ``webhook`` step,
each journey's own ``cap``, and which journeys run at all.

A touch names its journey and step; the step's webhook target and the journey's cap are read
from the journeys in force when the touch is sent (a target renamed since planning is called by
its new name; an edit awaiting review is not in force). A touch of a journey in force that does
not run (its file says ``enabled: false``, or dynamic adjustment switched it off) is not sent:
``journeys run`` plans a day ahead, and the file as it is now decides, not the one the touch was
planned under. ``InForceRules`` is what the service's
dispatcher asks (``engine.language.in_force_cache`` reloads only on a change). ``from_files``
reads the files as they are (tests, tools): again only when a journey file changed
(``engine.language.journey_registry.validated_report`` is cached by the files' stamps), and
builds the rules again only when that report is a new one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from engine.language.durations import parse_duration
from engine.language.journey_edits import Edition, editions, retired
from engine.language.journey_model import Journey


@dataclass(frozen=True)
class JourneyRules:
    webhook_targets: dict[tuple[str, str], str] = field(default_factory=dict)  # (journey, step) → target
    caps: dict[str, tuple[int, timedelta]] = field(default_factory=dict)  # journey → (count, window)
    # Journeys in force that do not run (``enabled: false``, or switched off): their touches are not sent.
    stopped: frozenset[str] = frozenset()
    # Journey → the version in force and when it came in (``engine.language.journey_edits``); the journeys
    # that were in force in this store and are no longer (their file removed). Both known only from a store
    # (``InForceRules``): files alone have no history.
    editions: dict[str, Edition] = field(default_factory=dict)
    retired: frozenset[str] = frozenset()
    # Journey → how late its touches may still go out, where its file says (``expire_after``; engine.sending.expiry).
    expire_after: dict[str, timedelta] = field(default_factory=dict)

    @classmethod
    def of(cls, journeys: Iterable[Journey], stopped: Iterable[str] = (), editions: dict[str, Edition] | None = None,
           retired: Iterable[str] = ()) -> JourneyRules:
        targets: dict[tuple[str, str], str] = {}
        caps: dict[str, tuple[int, timedelta]] = {}
        expire_after: dict[str, timedelta] = {}
        for journey in journeys:
            if journey.expire_after is not None:
                expire_after[journey.id] = parse_duration(journey.expire_after)
            if journey.cap is not None:
                caps[journey.id] = (journey.cap.count, parse_duration(journey.cap.window))
            for step in journey.steps:
                if step.webhook is not None:
                    targets[(journey.id, step.id)] = step.webhook.target
        return cls(targets, caps, frozenset(stopped), dict(editions or {}), frozenset(retired), expire_after)

    @classmethod
    def from_files(cls, directory: Path | None = None) -> JourneyRules:
        """The rules of the valid journey files in ``directory`` (default ``journeys/``)."""
        from engine.language.journey_registry import validated_report

        # Dispatch lanes ask at the start of every batch, concurrently: one at a time, so that a
        # changed folder is validated once (about a second) rather than by every lane at once.
        with _lock:
            report = validated_report(directory)
            known = _built.get(directory)
            if known is not None and known[0] is report:
                return known[1]
            rules = cls.of(lj.journey for lj in report.journeys)
            _built[directory] = (report, rules)
            return rules


_lock = threading.Lock()
# Folder -> (the validation report the rules were built from, the rules).
_built: dict[Path | None, tuple[Any, JourneyRules]] = {}


class InForceRules:
    """The rules of the journeys in force in ``engine``'s store, asked at the start of every batch: built
    again only when the journeys in force or their switches changed (``journeys_in_force`` keeps the same
    list till then)."""

    def __init__(self, engine: Engine, directory: Path | None = None) -> None:
        self.engine = engine
        self.directory = directory
        self._built: tuple[object, JourneyRules] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> JourneyRules:
        from engine.language.in_force_cache import journeys_in_force
        from engine.language.journey_switches import active_journeys

        with Session(self.engine) as session:
            journeys, _config = journeys_in_force(session, str(self.engine.url), self.directory)
            # Switches change without a file changing (dynamic adjustment): read at every batch.
            stopped = frozenset(lj.id for lj in journeys) - {lj.id for lj in active_journeys(session, journeys)}
            with self._lock:
                if self._built is None or self._built[0] is not journeys or self._built[1].stopped != stopped:
                    # When each version came in force changes only with the journeys in force: read on a change.
                    versions = {lj.id: lj.version for lj in journeys}
                    self._built = (journeys, JourneyRules.of((lj.journey for lj in journeys), stopped,
                                                             editions(session, versions), retired(session, versions)))
                return self._built[1]
