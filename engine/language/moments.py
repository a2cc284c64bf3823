"""Moments typed by people (CLI options, console date inputs) read the same way everywhere.

A time without a UTC offset is read in the delivery configuration's default time zone, because
that is the clock ops work by; the report's period bounds without an offset are UTC days, as the
report has always counted them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def _parse(text: str) -> datetime:
    from store.clock import in_range

    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), time(0))
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 date or time, e.g. 2027-02-06T10:00+08:00") from None
    return in_range(moment, repr(text))


def parse_local_moment(text: str, zone_name: str | None = None) -> datetime:
    """``text`` as an aware UTC moment; without an offset it is local to ``zone_name`` (default: the
    programme's zone in force, ``engine.language.settings_review.programme_zone``)."""
    from store.clock import as_utc, zone

    moment = _parse(text)
    if moment.tzinfo is None:
        if zone_name is None:
            from engine.language.settings_review import programme_zone

            zone_name = programme_zone()
        moment = moment.replace(tzinfo=zone(zone_name))
    return as_utc(moment)


def parse_utc_moment(text: str) -> datetime:
    """``text`` as an aware moment; a date is midnight UTC, a time without an offset is UTC."""
    moment = _parse(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
