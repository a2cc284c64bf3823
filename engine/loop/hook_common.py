"""What every webhook shares: its answer's shape, a signed but unreadable callback, the opt-out
words, a provider's timestamp, and handing the events it stored to the one event path."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlmodel import Session

from channels.optout import DEFAULT_OPT_OUT_KEYWORDS, StoredEvent, notify_event_listeners
from store.clock import utcnow
from store.db import get_engine, session_scope

log = logging.getLogger(__name__)

HookResponse = tuple[int, str]


class BadRequest(ValueError):
    """A signed callback we cannot read: answered 400 with this message."""


# The configuration's keywords by (path, mtime, size): reading and validating the file took 5–15 ms,
# once per inbound text.
_keywords_read: dict[str, tuple[tuple[int, int], list[str]]] = {}


def opt_out_keywords(keywords: Iterable[str] | None) -> list[str]:
    """``keywords`` when given, else the delivery configuration's (the spec's words if it is unreadable)."""
    if keywords is not None:
        return list(keywords)
    from engine.language.paths import delivery_config_path

    path = delivery_config_path()
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (0, 0)
    cached = _keywords_read.get(str(path))
    if cached is not None and cached[0] == stamp:
        return list(cached[1])
    try:
        from engine.language.settings_model import DeliveryConfig
        from engine.language.validation import load_config

        config, _problems = load_config(DeliveryConfig, path)
    except Exception:  # an unreadable config must not make an opt-out fail: fall back to the spec's words
        log.exception("delivery configuration unreadable; using the default opt-out keywords")
        config = None
    words = list(config.opt_out_keywords) if config is not None else list(DEFAULT_OPT_OUT_KEYWORDS)
    if config is not None:
        _keywords_read[str(path)] = (stamp, words)
    return list(words)


@contextmanager
def hook_session(db_url: str | None) -> Iterator[Session]:
    """``store.db.session_scope`` queued behind this process's other SQLite writers (the event path's
    lock): a webhook's write transaction left to SQLite's busy handler waits in sleeps of up to
    100 ms while the planner runs for the events before it."""
    from engine.loop.events import writer_lock

    with writer_lock(get_engine(db_url).dialect.name), session_scope(db_url) as session:
        yield session


def received_at(timestamp: str | None) -> datetime:
    """A provider's epoch-seconds timestamp as aware UTC, or now when absent or unreadable."""
    try:
        return datetime.fromtimestamp(int(timestamp or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return utcnow()


def act_after_commit(events: Sequence[StoredEvent], db_url: str | None) -> None:
    """Act at once on the events a webhook stored, once its transaction has committed: the planner
    runs for those customers as it does for ``POST /api/events`` (``engine.loop.events``), so a reply
    or a receipt leads to its journey's next step before the provider gets its answer."""
    if not events:
        return
    from engine.loop.events import act_on_stored

    for stored, outcome in zip(events, act_on_stored(events, db_url), strict=True):
        if isinstance(outcome, Exception):
            # Stored but not acted on: the next plan run acts on it (its processed_at is empty).
            log.error("event %s (%s) is stored; acting on it failed: %s", stored.id, stored.type, outcome)
    notify_event_listeners(events)
