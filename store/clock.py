"""Time helpers. The store keeps aware UTC datetimes (sqlmodel's UTCDateTime on
both SQLite and PostgreSQL); people see the customer's local time."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def as_utc(moment: datetime) -> datetime:
    """Any datetime as aware UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_local(moment: datetime, tz_name: str) -> datetime:
    """``moment`` as an aware datetime in the zone ``tz_name``."""
    return as_utc(moment).astimezone(zone(tz_name))
