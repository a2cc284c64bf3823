"""Which channel a touch may still use, and where it goes when its own channel no longer may.

SPEC §6: a touch goes out on the first channel of its list the customer has consented to and
can be reached on; on a permanent failure it falls back to the next such channel. Three places
make that choice after planning, and they must make the same one, so it lives here, below
all of them in the layering:

- ``engine.sending.dispatch``, when a send fails permanently or the channel's consent was
  withdrawn after the touch was planned;
- ``channels.optout.record_opt_out``, for the touches still planned on a channel the customer
  has just opted out of;
- ``engine.loop.receipts``, when a provider reports a permanent delivery failure.

(The planner's first choice, ``engine.planning.delivery_rules.choose_channel``, picks by the
same rule: the first consented, reachable channel of the step's list.)

What becomes of a touch whose channel lost the customer's consent depends on its category:

- **service** (renewal reminders, claim messages): the first consented, reachable channel of
  the touch's own ``fallback_channels``, the channels after it kept as its fallbacks; with none
  left it is cancelled. A renewal notice is owed to the customer whichever channel carries it.
- **marketing**: cancelled. Moving a promotion to another channel right after the customer
  said no on this one would read as working around their opt-out.

The fallbacks left after the chosen channel are not filtered by today's consent: dispatch checks
every channel again when it claims the touch, and a consent given again meanwhile is honoured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The customer column a channel's message is addressed to, and the one holding its consent
# (to service messages); marketing needs the channel's marketing consent as well (PIPL Art. 24:
# consent per purpose, so a customer can stop promotions and keep renewal and claim messages).
ADDRESS_FIELD: dict[str, str] = {"sms": "phone", "wechat": "wechat_openid", "email": "email",
                                 "push": "push_registration_id"}
CONSENT_FIELD: dict[str, str] = {c: f"consent_{c}" for c in ADDRESS_FIELD}
MARKETING_CONSENT_FIELD: dict[str, str] = {c: f"consent_{c}_marketing" for c in ADDRESS_FIELD}


def consented(customer: Any, channel: str, category: str = "service") -> bool:
    """Whether ``customer`` consented to ``category`` messages (service | marketing) on ``channel``."""
    consent = CONSENT_FIELD.get(channel)
    if consent is None or not getattr(customer, consent, False):
        return False
    # Marketing consent never given apart (None) follows the channel's; False is a withdrawal.
    return category != "marketing" or getattr(customer, MARKETING_CONSENT_FIELD[channel], None) is not False


def can_use(customer: Any, channel: str, category: str = "service") -> bool:
    """Whether ``customer`` (a ``Customer`` row or anything with its columns) has consented to
    ``category`` messages on ``channel`` and has an address on it."""
    address = ADDRESS_FIELD.get(channel)
    return address is not None and consented(customer, channel, category) and bool(getattr(customer, address, None))


def first_usable(channels: Sequence[str], usable: Callable[[str], bool]) -> tuple[str, list[str]] | None:
    """The first channel of ``channels`` that is ``usable``, with the channels listed after it;
    None when none is."""
    for i, channel in enumerate(channels):
        if usable(channel):
            return channel, list(channels[i + 1 :])
    return None


@dataclass(frozen=True)
class Reroute:
    """Where a touch goes: ``channel`` None means it is cancelled, for ``reason``."""

    channel: str | None
    fallback_channels: list[str]
    reason: str

    @property
    def cancelled(self) -> bool:
        return self.channel is None


def reroute_without_consent(category: str, channel: str, fallback_channels: Sequence[str],
                            usable: Callable[[str], bool], why: str) -> Reroute:
    """Where a touch planned on ``channel`` goes now that ``channel`` lost consent (``why`` says how:
    ``"opted out of sms"``, ``"no consent for sms"``); see the module doc."""
    if category != "service":
        return Reroute(None, [], f"{why}: a {category} touch is not moved to another channel")
    found = first_usable(fallback_channels, usable)
    if found is None:
        listed = ", ".join(fallback_channels) or "none listed"
        return Reroute(None, [], f"{why}: no other consented, reachable channel ({listed})")
    return Reroute(found[0], found[1], f"{why}: moved to {found[0]}")
