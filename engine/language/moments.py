"""Moments typed by people (CLI options, console date inputs) read the same way everywhere.

A time without a UTC offset is read in the delivery configuration's default time zone, because
that is the clock ops work by. A period's end is read by one rule wherever a person types one
(``journeys report`` and ``simulate``, the console's report, simulate and journey pages): a date is
the period's last day, included, and a moment is the first one after the period.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


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


# How a period's end is worded next to every input that takes one (the CLI's --help, the console's forms).
PERIOD_END_RULE = "the last day, included; a date and time is the first moment after the period"


def is_plain_date(text: str) -> bool:
    """Whether ``text`` is a date alone (no time of day)."""
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def parse_period_end(text: str, zone_name: str | None = None) -> datetime:
    """The end of a period typed by a person, as an aware UTC moment (``PERIOD_END_RULE``): a date is the
    last day of the period, so the period ends at the next midnight of ``zone_name`` (default: the
    programme's); a date and time is the first moment after the period, read as ``parse_local_moment``."""
    from store.clock import as_utc, zone

    moment = parse_local_moment(text, zone_name)
    if not is_plain_date(text):
        return moment
    if zone_name is None:
        from engine.language.settings_review import programme_zone

        zone_name = programme_zone()
    # The next local midnight, not 24 hours on: a day of a clock change is 23 or 25 hours long.
    next_day = date.fromisoformat(text.strip()) + timedelta(days=1)
    return as_utc(datetime.combine(next_day, time(0), tzinfo=zone(zone_name)))
