"""Why a claimed touch is settled without asking any provider: its customer is gone, its journey no
longer runs or was edited since the touch was planned, it has no consent, address or webhook target on
its channel. Each answer is the result a send would have had, with a code the recording step acts on
(``JOURNEY_OFF``: cancelled, never falling back to another channel, since no channel may carry it;
``EDITED``: cancelled the same way, and taken back so that the version in force plans it again).
"""

from __future__ import annotations

from channels.base import SendResult
from channels.routing import ADDRESS_FIELD, CONSENT_FIELD, consented
from engine.language.journey_edits import EDITED, edited_reason
from engine.sending.claiming import ClaimedTouch
from engine.sending.journey_rules import JourneyRules
from store.models import WEBHOOK_CHANNEL, Customer

JOURNEY_OFF = "journey_off"


def unsendable(touch: ClaimedTouch, customer: Customer | None, targets: dict[int, str],
               rules: JourneyRules) -> SendResult | None:
    if customer is None or customer.anonymised_at is not None:
        return SendResult(touch.key, False, error_class="permanent", error_code="no_customer",
                          error_reason="customer removed")
    if touch.journey_id in rules.stopped:
        # Planned ahead (``journeys run`` plans through the customer's next day) before the journey was
        # switched off: what the file says now is what happens.
        return SendResult(touch.key, False, error_class="permanent", error_code=JOURNEY_OFF,
                          error_reason=f"journey {touch.journey_id} switched off")
    if touch.journey_id in rules.retired:
        # Its file was removed (or renamed the journey): no file in force says to send it.
        return SendResult(touch.key, False, error_class="permanent", error_code=JOURNEY_OFF,
                          error_reason=f"journey {touch.journey_id} no longer in force")
    edition = rules.editions.get(touch.journey_id)
    if edition is not None and touch.attempts == 1 and touch.planned_for is not None \
            and edition.supersedes(touch.journey_version, touch.planned_for):
        # Planned ahead under the version before an edit, for a moment the edit governs.
        return SendResult(touch.key, False, error_class="permanent", error_code=EDITED,
                          error_reason=edited_reason(touch.journey_id))
    if touch.channel == WEBHOOK_CHANNEL:
        # A call to another system: nothing of the customer's consent or address applies.
        if touch.id in targets:
            return None
        return SendResult(touch.key, False, error_class="permanent", error_code="no_target",
                          error_reason=f"no webhook step {touch.step_id} in journey {touch.journey_id} in force")
    if touch.channel not in ADDRESS_FIELD:
        return SendResult(touch.key, False, error_class="permanent", error_code="unknown_channel",
                          error_reason=f"unknown channel {touch.channel}")
    if not consented(customer, touch.channel, touch.category):
        lacking = "marketing consent" if getattr(customer, CONSENT_FIELD[touch.channel]) else "consent"
        return SendResult(touch.key, False, error_class="permanent", error_code="no_consent",
                          error_reason=f"no {lacking} for {touch.channel}")
    if not getattr(customer, ADDRESS_FIELD[touch.channel]):
        return SendResult(touch.key, False, error_class="permanent", error_code="no_address",
                          error_reason=f"no {touch.channel} address")
    return None
