"""Classification of provider errors into retryable, permanent and unknown (SPEC §7).

The tables hold the codes whose meaning we know; anything else is decided by its
shape (HTTP status, SMTP reply class). Retryable failures are backed off and
retried by dispatch; permanent ones fail the touch and move on to the fallback
channel, so a code belongs in a permanent table only when retrying the same
message to the same address can never succeed.

What decides between "retryable" and "unknown" is whether the provider may have taken
the message, because a blind retry of one it did take sends it twice (Twilio has no
idempotency key):

- ``connect_error``: the request never reached the provider. Retryable.
- ``timeout`` / ``connection_lost`` after the request was written: only the reply was
  lost. Unknown.
- an HTTP 5xx: an HTTP answer means the request was sent (our bodies are a few hundred
  bytes, handed to the socket whole before the reply is read), and a server error says
  nothing of what became of it: a gateway's 502/504 typically comes after the backend
  has created the message. Unknown, like a lost reply, even when the body carries a
  "retryable" provider code (Twilio's 20500). A 4xx or 429, and an answer in the provider's
  own words that it did not act (WeChat's errcode ``-1`` "system busy" in an HTTP 200 JSON
  body), are definite: retryable or permanent as below.
- SMTP: any reply to the final dot is definite (RFC 5321 §4.1.1.4: only 250 means the relay
  took responsibility), so 4yz is retryable and 5yz permanent; the connection dropping
  after the dot, before the reply, is unknown; dropping before the dot is retryable.

Class ``unknown`` is never retried blindly: dispatch routes the touch to reconciliation
(``engine.sending.reconcile``), which asks a provider that can be asked (Twilio's Messages
list) and fails it as unknown where none can (docs/delivery-unknown.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.base import ErrorClass

CONNECT_ERROR = "connect_error"
TIMEOUT = "timeout"
CONNECTION_LOST = "connection_lost"
# The request may have been accepted: delivery is unknown until the provider is asked.
AMBIGUOUS_CODES = frozenset({TIMEOUT, CONNECTION_LOST})


@dataclass(frozen=True)
class Classified:
    error_class: ErrorClass
    reason: str


# Twilio REST error codes returned when creating a Message.
# https://www.twilio.com/docs/api/errors
TWILIO_PERMANENT: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21214: "'To' phone number cannot be reached",
    21217: "phone number does not appear to be valid",
    21401: "invalid phone number",
    21407: "this phone number type does not support SMS",
    21408: "permission to send to this region is not enabled",
    21602: "message body is required",
    21604: "'To' phone number is required",
    21610: "recipient has unsubscribed (replied STOP)",
    21612: "'To' number is not reachable via this 'From' number",
    21614: "'To' number is not a valid mobile number",
    21617: "message body exceeds the 1600 character limit",
}
TWILIO_RETRYABLE: dict[int, str] = {
    20429: "too many requests",
    30001: "queue overflow",
}
# Twilio's codes for its own server errors (HTTP 5xx): the message may have been created.
TWILIO_SERVER_ERROR: dict[int, str] = {
    20500: "Twilio internal server error",
    20503: "Twilio service unavailable",
}
# ErrorCode on undelivered/failed status callbacks (for the receipts side).
TWILIO_DELIVERY_PERMANENT: dict[int, str] = {
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered by the carrier",
    30008: "unknown error",
}

# WeChat Official Account API errcodes (template message send and token).
WECHAT_PERMANENT: dict[int, str] = {
    40003: "invalid openid",
    40036: "invalid template_id size",
    40037: "invalid template_id",
    43004: "recipient is not subscribed to the official account",
    43019: "recipient has blocked the official account",
    # The recipient refused (or has spent) their subscription to this message: the same message
    # cannot reach them until they subscribe again, so retrying only delays the fallback channel.
    43101: "recipient refused to receive this message (subscription refused or used up)",
    47001: "malformed request body",
    # A value breaking its field type's limit (channels.wechat_fields): the same data is refused every time.
    47003: "template data invalid (a value too long or not of its field's type)",
}
# These come in an HTTP 200 JSON body: WeChat's own answer that it did not send, unlike an
# HTTP 5xx with no errcode (a gateway's, say nothing of the send: class unknown).
WECHAT_RETRYABLE: dict[int, str] = {
    -1: "system busy",
    45009: "API daily quota reached",
    45011: "API minute quota reached (retry next minute)",
    45047: "customer service message frequency limit",
}
# A repeat of a template send whose client_msg_id WeChat already took within its dedup
# window (10 minutes). WeChat documents the dedup for template sends but not the reply to
# a repeat; its mass-send API answers 45065 "clientmsgid exist" with the existing msgid,
# so that reply (like errcode 0) means "accepted once", never "send again".
WECHAT_ALREADY_ACCEPTED: dict[int, str] = {45065: "client_msg_id already accepted"}
# Access token is stale: refresh it (once, shared) and retry the send once.
WECHAT_TOKEN_INVALID: dict[int, str] = {
    40001: "access_token invalid or not the latest",
    40014: "invalid access_token",
    42001: "access_token expired",
}


def classify_http_status(status: int) -> ErrorClass:
    """For an HTTP error answer to a request that was sent whole: a 5xx leaves delivery unknown
    (see the module doc); 429 is the provider's momentary state; other 4xx are about the request."""
    if status >= 500:
        return "unknown"
    if status in (429, 408, 401, 403):
        # 401/403 mean our credentials or IP allow-list are wrong: that is for ops to
        # fix, not a reason to fail this customer's touch and fall back to another channel.
        return "retryable"
    return "permanent"


def classify_twilio(status: int, code: int | None) -> Classified:
    if status >= 500:
        # Whatever the code says, a server error may come after the message was created.
        what = TWILIO_SERVER_ERROR.get(code or 0) or TWILIO_RETRYABLE.get(code or 0) or "Twilio server error"
        return Classified("unknown", f"{what} (HTTP {status}) after the request was sent: it may have been created")
    if code is not None:
        if code in TWILIO_PERMANENT:
            return Classified("permanent", TWILIO_PERMANENT[code])
        if code in TWILIO_RETRYABLE:
            return Classified("retryable", TWILIO_RETRYABLE[code])
    return Classified(classify_http_status(status), f"HTTP {status}")


def classify_twilio_delivery(code: int | None) -> Classified:
    """For an ErrorCode on an undelivered/failed status callback."""
    if code is not None and code in TWILIO_DELIVERY_PERMANENT:
        return Classified("permanent", TWILIO_DELIVERY_PERMANENT[code])
    return Classified("retryable", f"delivery error {code}")


def classify_wechat(errcode: int) -> Classified:
    if errcode in WECHAT_PERMANENT:
        return Classified("permanent", WECHAT_PERMANENT[errcode])
    if errcode in WECHAT_RETRYABLE:
        return Classified("retryable", WECHAT_RETRYABLE[errcode])
    if errcode in WECHAT_TOKEN_INVALID:
        # Only reached when the single retry after a refresh also failed.
        return Classified("retryable", WECHAT_TOKEN_INVALID[errcode])
    # Unknown codes are retried: max_attempts bounds the cost, while a wrong
    # "permanent" would silently drop the customer to the next channel.
    return Classified("retryable", f"errcode {errcode}")


def classify_smtp(code: int) -> Classified:
    """RFC 5321 reply classes: 4yz transient, 5yz permanent. A reply is always definite: at the
    final dot, anything but 250 means the relay did not take the message (RFC 5321 §4.1.1.4)."""
    if 400 <= code < 500:
        return Classified("retryable", f"SMTP {code} transient failure")
    if code >= 500:
        return Classified("permanent", f"SMTP {code} permanent failure")
    return Classified("retryable", f"SMTP {code} unexpected reply")


def classify_smtp_sender(code: int) -> Classified:
    """A refusal of MAIL FROM concerns our sender or session (530 authentication required, 550/553
    sender not permitted), not the customer's address: retryable, as a refused AUTH is, for ops to
    fix; as permanent it moved every e-mail touch to its fallback channel. Only 552 there (the
    message's declared SIZE over the relay's limit, RFC 1870) is about this message."""
    if code < 500 or code == 552:
        return classify_smtp(code)
    return Classified("retryable", f"SMTP {code} to MAIL FROM: the relay refused our sender, not the address")


# JPush REST API v3 error codes (``{"error": {"code": N}}`` in a 4xx answer to a push; the table
# "调用返回" of the Push API v3 page). 1000 and 1030 (internal timeout) come with a 5xx: unknown.
JPUSH_PERMANENT: dict[int, str] = {
    1002: "push request lacks a required parameter",
    1003: "push request parameters invalid (e.g. an empty or malformed registration id)",
    1005: "push content too long (JPush's byte limits)",
    1011: "no device matches the registration id (app uninstalled or id unknown)",
}
JPUSH_RETRYABLE: dict[int, str] = {
    1004: "JPush authentication failed (appKey/masterSecret)",
    1008: "JPush appKey invalid",
    2002: "JPush API call rate limit reached",
    2003: "JPush appKey is restricted from calling the API",
}


def classify_jpush(status: int, code: int | None) -> Classified:
    """A JPush answer that is not a success: a 5xx may come after the push was accepted (unknown);
    a known code decides; other 4xx by their HTTP status."""
    if status >= 500:
        return Classified("unknown", f"JPush server error (HTTP {status}) after the request was sent")
    if code is not None and code in JPUSH_PERMANENT:
        return Classified("permanent", JPUSH_PERMANENT[code])
    if code is not None and code in JPUSH_RETRYABLE:
        return Classified("retryable", JPUSH_RETRYABLE[code])
    return Classified(classify_http_status(status), f"HTTP {status}")
