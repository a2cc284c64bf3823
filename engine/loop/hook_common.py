"""What every webhook shares: its answer's shape, a signed but unreadable callback, the opt-out
words, a provider's timestamp, and its transaction, whose stored events go to the one event path."""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlmodel import Session

from channels.optout import DEFAULT_OPT_OUT_KEYWORDS, StoredEvent, notify_event_listeners
from store.clock import out_of_range, utcnow
from store.db import get_engine, session_scope

log = logging.getLogger(__name__)

HookResponse = tuple[int, str]


class BadRequest(ValueError):
    """A signed callback we cannot read: answered 400 with this message."""


def opt_out_keywords(keywords: Iterable[str] | None, db_url: str | None = None) -> list[str]:
    """``keywords`` when given, else those of the delivery settings in force in the store at ``db_url`` (a
    keyword edited in config/delivery.yaml waits for review like the rest of the file; the spec's words
    if no settings can be read). Call it before opening the hook's session: landing a changed file writes."""
    if keywords is not None:
        return list(keywords)
    from engine.language.in_force_cache import journeys_in_force

    try:
        engine = get_engine(db_url)
        with Session(engine) as session:
            _journeys, config = journeys_in_force(session, str(engine.url))  # the event path's, cached
        return list(config.opt_out_keywords)
    except Exception:  # unreadable settings must not make an opt-out fail: fall back to the spec's words
        log.exception("delivery settings unreadable; using the default opt-out keywords")
        return list(DEFAULT_OPT_OUT_KEYWORDS)


@contextmanager
def hook_session(db_url: str | None) -> Iterator[Session]:
    """``store.db.session_scope`` queued behind this process's other SQLite writers (the event path's
    lock): a webhook's write transaction left to SQLite's busy handler waits in sleeps of up to
    100 ms while the planner runs for the events before it."""
    from engine.loop.events import writer_lock

    with writer_lock(get_engine(db_url).dialect.name), session_scope(db_url) as session:
        yield session


@contextmanager
def hook_transaction(db_url: str | None, *,
                     act_later: list[StoredEvent] | None = None) -> Iterator[tuple[Session, list[StoredEvent]]]:
    """``hook_session`` and a list for the events the webhook stores in it, which are acted on
    (``act_after_commit``) once the transaction has committed; not when it failed. With ``act_later``
    they are handed to it instead, for the caller to act on after it has answered the provider."""
    events: list[StoredEvent] = []
    with hook_session(db_url) as session:
        yield session, events
    if act_later is None:
        act_after_commit(events, db_url)
    else:
        act_later.extend(events)


def received_at(timestamp: str | None) -> datetime:
    """A provider's epoch-seconds timestamp as aware UTC, or now when absent, unreadable or outside the
    years the product takes (``store.clock.out_of_range``: the planner adds durations to it)."""
    try:
        moment = datetime.fromtimestamp(int(timestamp or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return utcnow()
    return utcnow() if out_of_range(moment) else moment


# A provider's ids (Twilio's SM + 32 hex, WeChat's numeric MsgId, a 28-character openid) are letters,
# digits, _ and -; a value that is not one is refused before it reaches a query, a stored key (255
# characters at most) or a log line, and is not echoed back.
_PROVIDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


# C0, DEL and C1 controls: nothing a webhook's own URL carries, and a NUL is refused by PostgreSQL
# outright (a text column or a jsonb string), which made a signed callback answer 500.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def query_values(url: str) -> dict[str, str]:
    """The query parameters of a webhook's URL (the first of a repeated one); ``BadRequest`` when a
    name or value holds a control character. Every handler reads its query through this."""
    values: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True):
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise BadRequest("the URL's query holds a control character")
        values.setdefault(name, value)
    return values


def provider_id(value: str, name: str) -> str:
    """``value``, a webhook's id field ``name``, when it is one; else ``BadRequest``."""
    if not _PROVIDER_ID.fullmatch(value):
        raise BadRequest(f"{name} is not a provider id (1 to 64 letters, digits, _ or -)")
    return value


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
