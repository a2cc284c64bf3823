"""The journeys and delivery settings in force in a store, loaded again only when something could have
changed them.

Webhooks arrive many times a second and dispatch asks before every batch: validating every journey file
and landing the versions each time would dominate. The signature is the journey files' times and the
store's versions (a count, and the latest moment one went in force or was decided): every landing,
approval and rollback changes it, and with it what may be in force.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from engine.language.settings_model import DeliveryConfig
from engine.language.validation import LoadedJourney
from store.models import JourneyVersion

Signature = tuple[tuple[tuple[str, float], ...], tuple[Any, ...]]
_cache: dict[tuple[str, str], tuple[Signature, list[LoadedJourney], DeliveryConfig]] = {}
_loading = threading.Lock()


def _signature(session: Session, directory: Path) -> Signature:
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")) if directory.is_dir() else []
    v = JourneyVersion.__table__  # type: ignore[attr-defined]
    stored = session.execute(select(func.count(), func.max(v.c.in_force_at), func.max(v.c.reviewed_at))).one()
    return tuple((str(p), p.stat().st_mtime) for p in files), tuple(stored)


def journeys_in_force(
    session: Session, url: str, directory: Path | None = None
) -> tuple[list[LoadedJourney], DeliveryConfig]:
    """The journeys (of ``directory``, default ``journeys/``) and delivery settings in force in the store at
    ``url``; a load lands new versions and commits ``session``. The same list object is returned until
    something changed, so callers may key what they derive from it on its identity."""
    from engine.language.journey_registry import load_in_force
    from engine.language.journey_review import land_committed
    from engine.language.paths import journeys_dir
    from engine.language.settings_review import delivery_settings

    directory = directory or journeys_dir()
    key = (url, str(directory))
    signature = _signature(session, directory)
    cached = _cache.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1], cached[2]
    # One loader at a time: loading publishes new journey versions, and threads that all missed the
    # cache at once (the first events after a start or a journey edit) raced to insert the same
    # version and failed on its unique key.
    with _loading:
        signature = _signature(session, directory)
        cached = _cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]  # loaded by the thread this one waited for
        # Another process (the planner, a dispatcher) may land the same new version first: theirs is read.
        in_force = land_committed(session, lambda: load_in_force(session, directory))
        journeys = list(in_force.journeys.values())
        config = delivery_settings(session.get_bind().engine)
        # Taken after loading, so what this load landed does not force the next caller to load again.
        _cache[key] = (_signature(session, directory), journeys, config)
    return journeys, config
