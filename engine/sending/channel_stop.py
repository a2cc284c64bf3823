"""WeChat refusals about the official account rather than the customer: the channel stops, touches wait.

- 45009 "reach max api daily quota limit": the account's daily quota of API calls is spent, and WeChat
  counts it per day: every send is refused the same way until WeChat resets it at midnight, Beijing
  time. Retrying each touch on its own back-off spent every attempt of every WeChat touch on a refusal
  (and a touch out of attempts fell back or failed as if the customer could not be reached).
- 40164 "invalid ip, not in whitelist" (from the send or the token endpoint) and 48001 "api
  unauthorized": this server's IP is not on the account's IP whitelist, or the account has not been
  granted the API. Only ops can fix either, in the WeChat admin; until then every send is refused.

Either stops the channel for every worker (a ``kv`` row ``channel_stop:<channel>`` with its end and
cause, so other processes stop too): nothing is claimed on it until then. The touches it refused are
put back as planned for that moment, their attempt not counted, with a reason that says what ops can
do (``store.touch_reasons`` reads it back, the console words it in Chinese and English). A touch due on
a stopped channel whose step lists another channel the customer can be reached on goes out there now
(``move_off_stopped``), as SPEC §6's fallback does for a channel that cannot deliver: a renewal notice
or a birthday greeting must not wait for the quota's midnight, or for ops, and expire on the way.
Only a touch with no such channel waits. The quota
stop ends at the next midnight in Beijing; an account stop is tried again after ``ACCOUNT_RECHECK``
(ops may have fixed it), with one batch, and stopped again if not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col

from channels.routing import can_use, first_usable
from engine.sending.batch_customers import load_customers
from engine.sending.recording import FALL_BACK, update_touches
from store.clock import as_utc
from store.models import KeyValue, Touch, TouchStatus

log = logging.getLogger(__name__)

PREFIX = "channel_stop:"
ACCOUNT_RECHECK = timedelta(minutes=15)
MOVE_BATCH = 2_000  # touches moved off a stopped channel per claim: a backlog drains over the batches
WECHAT_DAY = ZoneInfo("Asia/Shanghai")  # WeChat's daily quotas are counted in Beijing days
# A send's error_code (the token endpoint's too) → the cause, as touch reasons name it.
WECHAT_STOPS: dict[str, str] = {
    "45009": "daily quota reached",
    "40164": "IP not whitelisted",
    "token:40164": "IP not whitelisted",
    "48001": "API unauthorized",
    "token:48001": "API unauthorized",
}
STOPS: dict[str, dict[str, str]] = {"wechat": WECHAT_STOPS}
# A touch the stop refused, back to planned for the stop's end: its attempt is not counted.
PUT_BACK = ("status = :planned, next_attempt_at = :next, attempts = attempts - 1, error_class = :cls, "
            "error_reason = :reason, claimed_by = NULL")


@dataclass(frozen=True)
class Stop:
    channel: str
    until: datetime
    cause: str
    errcode: str

    @property
    def reason(self) -> str:
        """The touch's reason, in the shape ``store.touch_reasons`` reads (``channel_stopped``)."""
        return (f"{self.channel} stopped until {self.until:%Y-%m-%d %H:%M} UTC: {self.cause} "
                f"(errcode {self.errcode.removeprefix('token:')})")


def stop_for(channel: str, error_code: str | None, now: datetime) -> Stop | None:
    """The stop a refusal calls for, or None when it is about this touch alone."""
    cause = STOPS.get(channel, {}).get(error_code or "")
    if cause is None or error_code is None:
        return None
    now = as_utc(now)
    if error_code == "45009":
        midnight = datetime.combine(now.astimezone(WECHAT_DAY).date() + timedelta(days=1), time(), WECHAT_DAY)
        until = as_utc(midnight)
    else:
        until = now + ACCOUNT_RECHECK
    return Stop(channel, until, cause, error_code)


def record_stops(conn: Connection, stops: list[Stop], now: datetime) -> None:
    """Keep each channel's latest stop for every worker (one row per channel, replaced)."""
    kv = KeyValue.__table__  # type: ignore[attr-defined]
    latest: dict[str, Stop] = {}
    for stop in stops:
        if stop.channel not in latest or stop.until > latest[stop.channel].until:
            latest[stop.channel] = stop
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for channel, stop in latest.items():
        # An upsert: two workers refused at once both write it, and neither's recording may fail on the key.
        row = dialect.insert(kv).values(key=PREFIX + channel, updated_at=now, value={
            "until": stop.until.isoformat(), "cause": stop.cause, "errcode": stop.errcode})
        conn.execute(row.on_conflict_do_update(index_elements=[kv.c.key], set_={
            "value": row.excluded.value, "updated_at": row.excluded.updated_at}))
        log.error("%s stopped until %s UTC: %s (errcode %s)", channel, f"{stop.until:%Y-%m-%d %H:%M}", stop.cause,
                  stop.errcode)


def current_stops(engine: Engine, now: datetime) -> dict[str, Stop]:
    """The stops in force at ``now``, by channel."""
    kv = KeyValue.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(select(kv.c.key, kv.c.value).where(kv.c.key.like(PREFIX + "%"))).all()
    return {str(key)[len(PREFIX):]: Stop(str(key)[len(PREFIX):], _until(value), str(value.get("cause", "")),
                                         str(value.get("errcode", "")))
            for key, value in rows if _until(value) > as_utc(now)}


def stopped_channels(engine: Engine, now: datetime) -> set[str]:
    """The channels stopped at ``now``."""
    return set(current_stops(engine, now))


def channels_to_claim(engine: Engine, channels: Iterable[str], now: datetime) -> list[str]:
    """Of ``channels``, those a dispatcher may claim on at ``now``; the touches due on the others are
    first moved to their next usable channel where their step lists one (``move_off_stopped``)."""
    stops = current_stops(engine, now)
    if stops:
        move_off_stopped(engine, stops, now)
    return sorted(set(channels) - set(stops))


def moved_reason(stop: Stop, to: str) -> str:
    """A moved touch's reason, in the shape ``store.touch_reasons`` reads (``stopped_moved``)."""
    return f"{stop.reason}; sent on {to} instead"


def move_off_stopped(engine: Engine, stops: Mapping[str, Stop], now: datetime, limit: int = MOVE_BATCH) -> int:
    """Move up to ``limit`` planned touches due on a stopped channel to the first channel after it in their
    list that the customer consents to and can be reached on (``channels.routing.first_usable``, the
    fallback's own choice), their attempts counted afresh; how many were offered (a touch another worker
    moved first is left as that one moved it). A touch with no such channel
    stays, waiting for the stop's end."""
    listed = and_(col(Touch.fallback_channels).is_not(None), cast(col(Touch.fallback_channels), String) != "[]")
    with Session(engine) as session:
        rows = session.execute(
            select(col(Touch.id), col(Touch.customer_id), col(Touch.category), col(Touch.channel),
                   col(Touch.fallback_channels))
            .where(col(Touch.status) == TouchStatus.PLANNED, col(Touch.channel).in_(list(stops)),
                   col(Touch.due_at) <= now, listed)
            .order_by(col(Touch.due_at), col(Touch.id)).limit(limit)).all()
        if not rows:
            return 0
        customers = load_customers(session, {row.customer_id for row in rows})
        moves: list[dict[str, Any]] = []
        for touch_id, customer_id, category, channel, fallback in rows:
            customer = customers.get(customer_id)
            if customer is None or customer.anonymised_at is not None:
                continue
            found = first_usable(list(fallback or []), partial(can_use, customer, category=category))
            if found is not None:
                moves.append({"id": touch_id, "stopped": channel, "channel": found[0], "fb": found[1], "next": None,
                              "cls": None, "reason": moved_reason(stops[channel], found[0])[:255]})
        # Dispatch's own fallback statement, one executemany; guarded on status and channel, so another
        # dispatcher moving it or an opt-out settling it first wins.
        update_touches(session.connection(), FALL_BACK, "AND status = :planned AND channel = :stopped", moves,
                       {"planned": TouchStatus.PLANNED})
        session.commit()
    if moves:
        log.warning("%d touch(es) due on a stopped channel offered to the next channel of their step", len(moves))
    return len(moves)


def _until(value: Any) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(str(value["until"])))
    except (KeyError, TypeError, ValueError):  # a row of another shape stops nothing
        return datetime.min.replace(tzinfo=UTC)
