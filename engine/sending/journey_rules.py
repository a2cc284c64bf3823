"""What dispatch reads from the journey files themselves: the target of each ``webhook`` step and
each journey's own ``cap``.

A touch names its journey and step; the step's webhook target and the journey's cap are read
from the journeys in force when the touch is sent (a target renamed since planning is called by
its new name). ``from_files`` re-reads only when a journey file changed
(``engine.language.journey_registry.validated_report`` is cached by the files' stamps).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from engine.language.durations import parse_duration
from engine.language.journey_model import Journey


@dataclass(frozen=True)
class JourneyRules:
    webhook_targets: dict[tuple[str, str], str] = field(default_factory=dict)  # (journey, step) → target
    caps: dict[str, tuple[int, timedelta]] = field(default_factory=dict)  # journey → (count, window)

    @classmethod
    def of(cls, journeys: Iterable[Journey]) -> JourneyRules:
        targets: dict[tuple[str, str], str] = {}
        caps: dict[str, tuple[int, timedelta]] = {}
        for journey in journeys:
            if journey.cap is not None:
                caps[journey.id] = (journey.cap.count, parse_duration(journey.cap.window))
            for step in journey.steps:
                if step.webhook is not None:
                    targets[(journey.id, step.id)] = step.webhook.target
        return cls(targets, caps)

    @classmethod
    def from_files(cls, directory: Path | None = None) -> JourneyRules:
        """The rules of the valid journey files in ``directory`` (default ``journeys/``)."""
        from engine.language.journey_registry import validated_report

        return cls.of(lj.journey for lj in validated_report(directory).journeys)
