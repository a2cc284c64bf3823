"""Opt-out: recognising the keyword, recording it at once, and the store primitives receipts share.

SPEC §6: a customer who replies ``TD``/``退订``/``STOP``/``unsubscribe`` (the list is
``DeliveryConfig.opt_out_keywords``) must not receive on that channel again, starting now.
``record_opt_out`` flips the consent column (with its source and time, PIPL), settles the
customer's still-planned touches on that channel and logs an ``opted_out`` outcome plus a
``message.opted_out`` event. A planned service touch moves to the next consented, reachable
channel of its own fallback list and a marketing touch is cancelled, each with the reason in
``error_reason``: the choice is ``channels.routing.reroute_without_consent``, the one dispatch
makes for a touch whose consent went after planning, so the two paths cannot disagree.
Touches already claimed for sending are not touched here: dispatch re-checks consent when it
prepares what it claimed.

Everything written from the outside world is keyed: ``insert_or_ignore`` on a unique
column (``Outcome.dedup_key``, ``Event.external_id``) is how a repeated callback or a
retried webhook changes nothing.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, col, select

from channels.routing import can_use, reroute_without_consent
from store.clock import utcnow
from store.consent import OPT_OUT_SOURCE_PREFIXES, is_opt_out_source
from store.models import CHANNELS, Customer, Event, Outcome, Touch, TouchStatus

log = logging.getLogger(__name__)

DEFAULT_OPT_OUT_KEYWORDS: tuple[str, ...] = ("TD", "退订", "STOP", "unsubscribe")
OPTED_OUT_REASON = "opted out"

# Trailing punctuation people add to a one-word reply ("退订。", "STOP!").
_TRAILING_PUNCT = re.compile(r"[\s.。!！?？,，;；~～]+$")


def normalise_reply(text: str) -> str:
    """Trimmed, NFKC-folded (full-width ``ＴＤ`` → ``TD``), case-folded, trailing punctuation dropped."""
    folded = unicodedata.normalize("NFKC", text).strip()
    return _TRAILING_PUNCT.sub("", folded).casefold()


# Unicode categories a keyword reply may carry around or inside the word without being another reply:
# punctuation and brackets (【退订】, “TD”, -TD-), symbols and emoji (退订🙏), spaces anywhere (T D, 退 订),
# controls and invisible format characters (a zero-width space pasted before TD), and combining marks
# (an emoji's variation selector). Letters and digits are the word.
_NOT_THE_WORD = ("P", "S", "Z", "C", "Mn")


def _keyword_form(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if not unicodedata.category(ch).startswith(_NOT_THE_WORD))


# Words people wrap a one-word request in ("退订 谢谢", "请退订", "我要退订", "TD please", "unsubscribe me"):
# they ask for nothing but the keyword, so a reply made of keywords and these alone is the request. A reply
# with any other word is a sentence that merely mentions the keyword ("不要退订", "TD是什么", "don't STOP")
# and stays a reply for an agent: a negation or a question is never among these words.
COURTESY_WORDS: tuple[str, ...] = (
    "谢谢你", "谢谢您", "谢谢", "多谢", "感谢", "麻烦你", "麻烦您", "麻烦", "请帮我", "帮我", "给我", "请",
    "我要", "我想", "我", "要", "你好", "您好", "了", "吧", "哦", "啊", "呀",
    "thankyou", "thanks", "thank", "thx", "please", "pls", "plz", "me", "hi", "hello", "ok",
)


def _forms(words: Iterable[str]) -> tuple[str, ...]:
    return tuple({form for w in words if (form := _keyword_form(w))})


_COURTESY = _forms(COURTESY_WORDS)
# A reply longer than this, in letters and digits, says more than a request to stop: it is a sentence.
_LONGEST_REQUEST = 200


def is_opt_out(text: str, keywords: Iterable[str] = DEFAULT_OPT_OUT_KEYWORDS) -> bool:
    """Whether the reply asks for nothing but an opt-out: its letters and digits are opt-out keywords, one
    or several ("TD退订", copied from the footer 回复TD退订), with at most the courtesy words around them
    (``COURTESY_WORDS``: "退订 谢谢", "TD please"), whatever spaces, punctuation, symbols, width or case
    surround or split them. A keyword inside any other sentence is not ("不要退订", "TD是什么")."""
    reply = _keyword_form(text)
    words = _forms(keywords)
    if not reply or not words or len(reply) > _LONGEST_REQUEST:
        return False
    # Split the reply into words left to right, remembering at each position whether a keyword came yet:
    # linear in the reply. (A regular expression of the alternations backtracked exponentially on words
    # that build each other, "我要" against "我" + "要": a reply of 50 such letters took minutes.)
    reached: list[set[bool]] = [set() for _ in range(len(reply) + 1)]
    reached[0].add(False)
    for at in range(len(reply)):
        for keyword_seen in reached[at]:
            for word in words:
                if reply.startswith(word, at):
                    reached[at + len(word)].add(True)
            for word in _COURTESY:
                if reply.startswith(word, at):
                    reached[at + len(word)].add(keyword_seen)
    return True in reached[len(reply)]


# --- store primitives -----------------------------------------------------------------------------


def insert_or_ignore(session: Session, model: type[SQLModel], values: Mapping[str, Any], unique: str) -> bool:
    """INSERT … ON CONFLICT (``unique``) DO NOTHING; True if the row was new.

    Both SQLite and PostgreSQL support it, and on PostgreSQL a concurrent duplicate waits
    on the unique index and then does nothing, so two identical webhooks racing each other
    still record one row.
    """
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=[unique])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=[unique])
    else:  # pragma: no cover - the store supports these two
        raise RuntimeError(f"insert_or_ignore: unsupported database {dialect!r}")
    # RETURNING rather than rowcount: SQLAlchemy adds an implicit RETURNING on PostgreSQL,
    # after which psycopg reports rowcount -1.
    result = session.execute(stmt.returning(*table.primary_key.columns))
    return result.first() is not None


class OutcomeTouch(Protocol):
    """What an outcome row needs of the touch it is about (a ``Touch`` row or a claimed touch)."""

    @property
    def id(self) -> int | None: ...

    @property
    def customer_id(self) -> int: ...

    @property
    def channel(self) -> str: ...


def touch_outcome(touch: OutcomeTouch, kind: str, dedup_key: str, detail: Mapping[str, Any],
                  at: datetime) -> dict[str, Any]:
    """The ``Outcome`` row for what happened to ``touch``, ready for ``insert_or_ignore`` on ``dedup_key``.

    The key is cut to the column's 255 characters and empty detail fields are left out, so a
    receipt and a send result describing the same failure store the same shape.
    """
    return {
        "dedup_key": dedup_key[:255],
        "touch_id": touch.id,
        "customer_id": touch.customer_id,
        "channel": touch.channel,
        "kind": kind,
        "detail": {k: v for k, v in detail.items() if v is not None},
        "occurred_at": at,
    }


@dataclass(frozen=True)
class StoredEvent:
    """An event this module stored; what event listeners receive after the transaction commits."""

    id: int
    external_id: str
    type: str
    customer_id: int
    data: dict[str, Any]
    occurred_at: datetime


EventListener = Callable[[StoredEvent], None]

# The planner registers here (e.g. ``event_listeners.append(on_event)``) so that an inbound
# reply or survey answer is evaluated against event-entry journeys at once. Listeners run
# after the event is committed; one that raises is logged and the others still run. Rows
# stay in ``event`` with ``processed_at`` empty, so a sweep catches anything a listener missed.
event_listeners: list[EventListener] = []


def record_event_hook(
    session: Session,
    *,
    customer_id: int,
    type: str,
    data: dict[str, Any],
    external_id: str,
    occurred_at: datetime | None = None,
) -> StoredEvent | None:
    """Store an Event once per ``external_id``; None when it was already stored (a duplicate)."""
    now = utcnow()
    values = {
        "external_id": external_id,
        "type": type,
        "customer_id": customer_id,
        "data": data,
        "occurred_at": occurred_at or now,
        "received_at": now,
    }
    if not insert_or_ignore(session, Event, values, "external_id"):
        return None
    row = session.exec(select(Event).where(Event.external_id == external_id)).one()
    assert row.id is not None
    return StoredEvent(row.id, row.external_id, row.type, row.customer_id, dict(row.data), row.occurred_at)


def notify_event_listeners(events: Iterable[StoredEvent]) -> None:
    """Hand committed events to every registered listener (call after the session commits)."""
    for stored in events:
        for listener in list(event_listeners):
            try:
                listener(stored)
            except Exception:  # one broken listener must not lose the webhook's answer
                log.exception("event listener %r failed for event %s (%s)", listener, stored.id, stored.type)


# --- opt-out --------------------------------------------------------------------------------------


@dataclass
class OptOutResult:
    customer_id: int
    channel: str
    cancelled_touches: int
    moved_touches: int = 0  # service touches moved to another channel of their own list
    events: list[StoredEvent] = field(default_factory=list)
    purpose: str = "all"  # all | marketing: what was withdrawn on the channel


def record_opt_out(
    session: Session,
    customer_id: int,
    channel: str,
    *,
    source: str,
    dedup_key: str,
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
    purpose: str = "all",
) -> OptOutResult | None:
    """Withdraw consent for ``channel`` now; None if this opt-out (``dedup_key``) was already recorded,
    or if there is nothing left to withdraw (``still_consented``): a customer who opted out already,
    by another reply, link or unfollow, gets no second opt-out outcome, event or confirmation.

    ``purpose``: ``all`` withdraws the channel (service and marketing); ``marketing`` only the
    marketing consent there (PIPL Art. 24: consent per purpose), so only planned marketing
    touches on the channel are cancelled and renewal or claim messages still come."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}: channels are {', '.join(CHANNELS)}")
    if purpose not in ("all", "marketing"):
        raise ValueError(f"unknown opt-out purpose {purpose!r}: all or marketing")
    if not is_opt_out_source(source):
        # An import or the API would otherwise take the withdrawal for one it may give back.
        raise ValueError(f"opt-out source {source!r} must start with one of {', '.join(OPT_OUT_SOURCE_PREFIXES)}")
    at = at or utcnow()
    outcome = {
        "dedup_key": dedup_key,
        "customer_id": customer_id,
        "channel": channel,
        "kind": "opted_out",
        "detail": {"source": source, "purpose": purpose, **(detail or {})},
        "occurred_at": at,
    }
    if outcome_recorded(session, dedup_key):
        return None
    withdrawn = [f"consent_{channel}_marketing"] if purpose == "marketing" else [f"consent_{channel}",
                                                                                 f"consent_{channel}_marketing"]
    values: dict[str, Any] = {"updated_at": at}
    for column in withdrawn:
        values.update({column: False, f"{column}_source": source, f"{column}_at": at})
    # Guarded on the consent still being there: of two opt-outs racing, the second waits on the
    # customer's row and then finds nothing to withdraw.
    changed = session.execute(
        update(Customer).where(col(Customer.id) == customer_id, still_consented(channel, purpose)).values(values)
    ).rowcount  # type: ignore[attr-defined]
    if not changed or not insert_or_ignore(session, Outcome, outcome, "dedup_key"):
        return None
    cancelled, moved = _settle_planned_touches(session, customer_id, channel,
                                               marketing_only=purpose == "marketing")
    result = OptOutResult(customer_id, channel, cancelled, moved, purpose=purpose)
    stored = record_event_hook(
        session,
        customer_id=customer_id,
        type="message.opted_out",
        data={"channel": channel, "source": source, "purpose": purpose},
        external_id=f"optout:{dedup_key}",
        occurred_at=at,
    )
    if stored is not None:
        result.events.append(stored)
    log.info("customer %s opted out of %s on %s (%s); %d planned touch(es) cancelled, %d moved to another channel",
             customer_id, purpose, channel, source, result.cancelled_touches, result.moved_touches)
    return result


def outcome_recorded(session: Session, dedup_key: str) -> bool:
    """Whether an outcome with this key is stored (a webhook repeated, an opt-out already recorded)."""
    return session.exec(select(Outcome.id).where(Outcome.dedup_key == dedup_key)).first() is not None


def still_consented(channel: str, purpose: str = "all") -> ColumnElement[bool]:
    """SQL: the customer still has something an opt-out of ``purpose`` on ``channel`` would withdraw:
    the channel's consent (``all``), or marketing on it (``marketing``: the channel's consent with a
    marketing consent not withdrawn, as ``channels.routing.consented`` reads them)."""
    consent = col(getattr(Customer, f"consent_{channel}")).is_(True)
    if purpose != "marketing":
        return consent
    marketing = col(getattr(Customer, f"consent_{channel}_marketing"))
    return and_(consent, or_(marketing.is_(None), marketing.is_(True)))


def _settle_planned_touches(session: Session, customer_id: int, channel: str,
                            marketing_only: bool = False) -> tuple[int, int]:
    """Cancel or move the customer's planned touches on ``channel`` (consent for it is already
    withdrawn in this transaction), only the marketing ones when ``marketing_only``; (cancelled, moved)."""
    customer = session.exec(
        select(Customer).where(col(Customer.id) == customer_id).execution_options(populate_existing=True)
    ).first()
    planned = session.execute(
        select(Touch.id, Touch.category, Touch.fallback_channels).where(
            col(Touch.customer_id) == customer_id, col(Touch.channel) == channel,
            col(Touch.status) == TouchStatus.PLANNED,
            *([col(Touch.category) == "marketing"] if marketing_only else []))
        .order_by(col(Touch.id))
    ).all()

    def usable(other: str) -> bool:
        return customer is not None and can_use(customer, other)  # only service touches are moved

    cancelled = moved = 0
    for touch_id, category, fallback_channels in planned:
        what = f"marketing on {channel}" if marketing_only else channel
        choice = reroute_without_consent(category, channel, list(fallback_channels or []), usable,
                                         f"{OPTED_OUT_REASON} of {what}")
        # Guarded on status and channel: a dispatch worker that claimed the touch meanwhile has it.
        guard = (col(Touch.id) == touch_id, col(Touch.status) == TouchStatus.PLANNED, col(Touch.channel) == channel)
        if choice.cancelled:
            values: dict[str, Any] = {"status": TouchStatus.CANCELLED, "error_reason": choice.reason[:255]}
        else:
            # A fresh start on the new channel, due when it was due: as dispatch's fallback does.
            values = {"channel": choice.channel, "fallback_channels": choice.fallback_channels, "attempts": 0,
                      "next_attempt_at": None, "error_class": None, "error_reason": choice.reason[:255]}
        changed = session.execute(update(Touch).where(*guard).values(**values)).rowcount  # type: ignore[attr-defined]
        if changed:
            if choice.cancelled:
                cancelled += 1
            else:
                moved += 1
    return cancelled, moved


# --- unsubscribe links (email List-Unsubscribe, links in messages) -------------------------------

SECRET_ENV = "JOURNEYS_SECRET_KEY"  # nosec B105 # the name of an environment variable, not a secret
PUBLIC_URL_ENV = "JOURNEYS_PUBLIC_URL"
UNSUBSCRIBE_PATH = "/hooks/unsubscribe/"


class MissingSecret(RuntimeError):
    pass


# Set once the missing key is logged: once tells the operator, and every link a customer opens (or
# message rendered) must not write the same line again.
missing_secret_logged = threading.Event()


def _log_missing_secret_once() -> None:
    if missing_secret_logged.is_set():
        return
    missing_secret_logged.set()
    # Not a random key like the console's sessions: a link must still work after a restart and on
    # every worker, so without a configured key no link is made and none is accepted.
    log.error("%s is not set: unsubscribe links can be neither signed nor checked. Messages whose template "
              "uses unsubscribe_url fail to render (none goes out with a link that could not work) and every "
              "link opened is answered as invalid; set %s to the same lasting value on every process",
              SECRET_ENV, SECRET_ENV)


def _serializer() -> URLSafeSerializer:
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        _log_missing_secret_once()
        raise MissingSecret(f"{SECRET_ENV} is not set: unsubscribe links cannot be signed")
    return URLSafeSerializer(secret, salt="unsubscribe")


def public_url() -> str:
    """Base URL under which providers and customers reach us (``JOURNEYS_PUBLIC_URL``), no trailing slash."""
    return os.environ.get(PUBLIC_URL_ENV, "http://localhost:8000").rstrip("/")


def unsubscribe_token(customer_external_id: str, channel: str) -> str:
    """A signed token naming the customer and channel; raises MissingSecret without JOURNEYS_SECRET_KEY."""
    return str(_serializer().dumps([customer_external_id, channel]))


def unsubscribe_url(customer_external_id: str, channel: str) -> str:
    return f"{public_url()}{UNSUBSCRIBE_PATH}{unsubscribe_token(customer_external_id, channel)}"


def read_unsubscribe_token(token: str) -> tuple[str, str] | None:
    """(customer external id, channel) from a token we signed, or None if it is forged or malformed,
    or if no key is configured to check it (``JOURNEYS_SECRET_KEY``; logged once)."""
    try:
        data = _serializer().loads(token)
    except (BadData, MissingSecret):
        return None
    if (
        not isinstance(data, list)
        or len(data) != 2
        or not all(isinstance(x, str) for x in data)
        or data[1] not in CHANNELS
    ):
        return None
    return data[0], data[1]
