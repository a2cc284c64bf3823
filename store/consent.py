"""A consent the customer withdrew through us stays withdrawn until they give it again (PIPL Art. 15).

An opt-out (a ``TD`` reply, an unsubscribe link, a WeChat unfollow: ``channels.optout``) is known
only here: the source systems that feed the nightly customer file still hold the consent the
customer had before. Taking the file's ``yes`` would give back, at the next import, what the
customer took away. So a withdrawal whose source is one of ours is only replaced by a consent the
writer shows was given after it (a consent time later than the withdrawal's).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from store.clock import as_utc

# The sources ``channels.optout.record_opt_out`` records a withdrawal with: ``reply:<channel>``,
# ``link:<channel>`` and ``wechat:unsubscribe``. record_opt_out refuses any other, so a new way
# to opt out cannot be left out of this rule.
OPT_OUT_SOURCE_PREFIXES = ("reply:", "link:", "wechat:")


# Clocks of the systems that send consents drift; a few minutes ahead is theirs, not a claim.
CLOCK_SKEW = timedelta(minutes=5)


def consent_time_problem(at: datetime | None, now: datetime) -> str | None:
    """Why ``at`` cannot be when a consent was given, or None. A time ahead of now would outrank every
    later opt-out (``keeps_opt_out``): a consent dated 2099 gave back, at each import, what the
    customer withdrew in between."""
    if at is not None and as_utc(at) > as_utc(now) + CLOCK_SKEW:
        return "is in the future: a consent is dated when it was given"
    return None


def is_opt_out_source(source: str | None) -> bool:
    """Whether ``source`` names a withdrawal the customer made through one of our channels."""
    return bool(source) and str(source).startswith(OPT_OUT_SOURCE_PREFIXES)


def keeps_opt_out(stored: bool | None, stored_source: str | None, stored_at: datetime | None,
                  given: bool | None, given_at: datetime | None) -> bool:
    """Whether the stored consent, withdrawn by an opt-out, stands against ``given`` (True, or None:
    a marketing consent covered by the channel's, which gives marketing back too). It yields only
    to a consent given (``given_at``) after the withdrawal."""
    if stored is not False or given is False or not is_opt_out_source(stored_source):
        return False
    if given_at is None or stored_at is None:
        return given_at is None
    return as_utc(given_at) <= as_utc(stored_at)


def customer_write_refusal(row: Any, given: Mapping[str, Any], given_at: datetime | None = None) -> str | None:
    """Why the fields ``given`` (a customer's, by name) may not be written onto the stored ``row`` by
    ``PUT /api/customers``, its consents given at ``given_at`` (None: the writer does not say); None
    when they may.

    An anonymised customer takes no personal data again: its touches, tasks and answers are kept for
    the figures, and a name put back would make them a person's history (the import refuses the
    same). A consent the customer withdrew through us is given back only by the customer."""
    if row is None:
        return None
    if row.anonymised_at is not None:
        return f"customer {row.external_id!r} is anonymised: it takes no personal data again"
    withdrawn = [name for name, value in given.items()
                 if name.startswith("consent_") and name != "consent_source" and value is not False
                 and value is not None and keeps_opt_out(getattr(row, name), getattr(row, f"{name}_source"),
                                                         getattr(row, f"{name}_at"), value, given_at)]
    if withdrawn:
        return (f"{', '.join(sorted(withdrawn))}: withdrawn by the customer "
                f"({getattr(row, sorted(withdrawn)[0] + '_source')}); only a consent given after the withdrawal "
                f"(consent_at) gives it back")
    return None


def record_consents(row: Any, given: Mapping[str, Any], source: str, now: datetime) -> None:
    """Each consent of ``given`` (``consent_<channel>`` and ``consent_<channel>_marketing``) that changes
    ``row``, recorded with its source and time (SPEC §9); a consent left out or null is left alone."""
    for key, value in given.items():
        if (key.startswith("consent_") and key != "consent_source" and value is not None
                and getattr(row, key) != value):
            setattr(row, key, value)
            setattr(row, f"{key}_source", source)
            setattr(row, f"{key}_at", now)
