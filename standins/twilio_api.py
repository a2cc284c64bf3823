"""Stand-in for the Twilio Messages API (2010-04-01) and its status/inbound webhooks.

Speaks what the official SDK and our receipts endpoint expect from Twilio:
- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, HTTP basic
  auth ``AccountSid:AuthToken`` (401 + code 20003 otherwise); 201 with a Message
  resource (``sid`` = ``SM`` + 32 hex, ``status: queued``); errors as Twilio's JSON
  ``{code, message, more_info, status}``.
- Status callbacks POSTed to the message's ``StatusCallback``: queued → sent →
  delivered (or undelivered/failed with ``ErrorCode``), signed with
  ``X-Twilio-Signature`` exactly as Twilio signs (HMAC-SHA1 of URL + sorted params,
  via ``RequestValidator.compute_signature``).
- Inbound SMS POSTed to ``inbound_url`` (From, To, Body, MessageSid, ...), signed. A
  ``<Message>`` in the TwiML the webhook answers is sent back to the customer from the number
  they wrote to, as Twilio does: it is in the Messages list too, ``direction: outbound-reply``.
- ``GET /2010-04-01/Accounts/{AccountSid}/Messages.json`` lists accepted messages,
  newest first, filtered by ``To``, ``From`` and ``DateSent`` / ``DateSent<`` /
  ``DateSent>`` (compared by UTC day, both ends inclusive, as Twilio documents its
  ``YYYY-MM-DD`` filters), in Twilio's paging JSON (``PageSize``, ``Page``,
  ``next_page_uri``): what reconciliation asks after a lost reply, a 5xx or a crash.
  ``list_failures`` answers that many list requests with a 500 first (Twilio in trouble
  while we ask).

The touch's idempotency key travels in the StatusCallback URL's ``touch_key``
query parameter (Twilio has no idempotency field on Messages); the accepted log
records it so reliability tests can count duplicates.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from email.utils import formatdate
from functools import partial
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from aiohttp import web
from defusedxml import ElementTree as SafeET
from twilio.request_validator import RequestValidator

from standins.base import CallbackStandin
from standins.faults import Accepted, Fault, FaultPlan

KEY_PARAM = "touch_key"
API_VERSION = "2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)
_ERROR_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}


def num_segments(body: str) -> int:
    if all(c in _GSM7 for c in body):
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    return 1 if len(body) <= 70 else -(-len(body) // 67)


def twilio_error(code: int, status: int, message: str | None = None) -> web.Response:
    payload = {
        "code": code,
        "message": message or _ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(payload, status=status)


class TwilioStandin(CallbackStandin):
    kind = "twilio"
    callback_name = "status callback"

    def __init__(  # nosec B107 # the stand-in's own test credential; stand-ins run only on loopback
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "standin-auth-token",
        *,
        callbacks: bool = True,
        callback_workers: int = 8,
        inbound_url: str | None = None,
        faults: FaultPlan | None = None,
        permanent_code: int = 21211,
    ) -> None:
        super().__init__(faults, callbacks=callbacks, callback_workers=callback_workers)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.inbound_url = inbound_url
        self.permanent_code = permanent_code
        self.validator = RequestValidator(auth_token)
        self._expected_auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        # Per recipient: an API error code at create time, or a final delivery outcome.
        self.recipient_errors: dict[str, int] = {}
        self.delivery_outcomes: dict[str, tuple[str, int | None]] = {}
        # Accepted messages per recipient, oldest first, for the Messages list.
        self._by_to: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.list_failures = 0  # the next so many list requests are answered 500

    def routes(self) -> list[web.RouteDef]:
        messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json"
        return [
            web.post(messages, self.create_message),
            web.get(messages, self.list_messages),
            web.post("/_standin/inbound", self._admin_inbound),
        ]

    def reset(self) -> None:
        super().reset()
        self._by_to.clear()
        self.list_failures = 0

    def _authorized(self, request: web.Request) -> bool:
        """HTTP basic auth as this account, on this account's URL: otherwise Twilio answers 20003."""
        return (
            request.headers.get("Authorization") == self._expected_auth
            and request.match_info["account_sid"] == self.account_sid
        )

    def _fault_reply(self, fault: Fault) -> web.Response:
        if fault == "429":
            return twilio_error(20429, 429)
        if fault == "permanent":
            return twilio_error(self.permanent_code, 400)
        return twilio_error(20500, 500)  # a 5xx, or the error a client sees after a timeout

    # -- Messages API ---------------------------------------------------------------
    async def create_message(self, request: web.Request) -> web.Response:
        self.counts["create"] += 1
        if not self._authorized(request):
            return twilio_error(20003, 401)
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        await self.faults.latency()

        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return twilio_error(21604, 400)
        if not from_ and not form.get("MessagingServiceSid"):
            return twilio_error(21603, 400)
        if not body and not form.get("MediaUrl"):
            return twilio_error(21602, 400)
        if not _E164.match(to):
            return twilio_error(21211, 400, f"The 'To' number {to} is not a valid phone number.")
        if to in self.recipient_errors:
            return twilio_error(self.recipient_errors[to], 400)

        fault = self.faults.draw()
        refusal = await self.faults.refusal(fault, self._fault_reply)
        if refusal is not None:
            return refusal

        sid = "SM" + uuid.uuid4().hex
        callback = form.get("StatusCallback")
        key = parse_qs(urlsplit(callback).query).get(KEY_PARAM, [None])[0] if callback else None
        self.log.add(Accepted(sid, to, key, {"from": from_, "body": body, "status_callback": callback}))
        self.counts["accepted"] += 1
        self._by_to[to].append({"sid": sid, "to": to, "from": from_, "body": body, "form": form, "at": time.time(),
                                "direction": "outbound-api"})
        self._schedule_callbacks(sid, to, from_, callback)
        # A lost reply, or a 500 for a message that exists: the sender cannot know it was created.
        failed = await self.faults.after_accept(fault, self._fault_reply)
        if failed is not None:
            return failed
        return web.json_response(self._resource(sid, to, from_, body, form), status=201)

    # -- Messages list ----------------------------------------------------------------
    async def list_messages(self, request: web.Request) -> web.Response:
        self.counts["list"] += 1
        if not self._authorized(request):
            return twilio_error(20003, 401)
        if self.list_failures > 0:
            self.list_failures -= 1
            return twilio_error(20500, 500)
        q = request.query
        try:
            page_size = max(1, min(1000, int(q.get("PageSize", "50"))))
            page = max(0, int(q.get("Page", "0")))
        except ValueError:
            return twilio_error(20001, 400, "Invalid paging parameter")
        to, from_ = q.get("To"), q.get("From")
        on, before, after = (q.get(name, "")[:10] or None for name in ("DateSent", "DateSent<", "DateSent>"))
        candidates = self._by_to.get(to, []) if to else [m for ms in self._by_to.values() for m in ms]
        rows: list[dict[str, Any]] = []
        for m in reversed(candidates):  # Twilio lists the newest first
            day = datetime.fromtimestamp(m["at"], UTC).date().isoformat()
            if (from_ and m["from"] != from_) or (on and day != on) or (before and day > before) or (
                after and day < after
            ):
                continue
            rows.append(m)
        chunk = rows[page * page_size : (page + 1) * page_size]
        messages = []
        for m in chunk:
            resource = self._resource(m["sid"], m["to"], m["from"], m["body"], m["form"], m["direction"])
            sent = formatdate(m["at"], usegmt=True)
            resource.update(status="sent", date_created=sent, date_sent=sent, date_updated=sent)
            messages.append(resource)
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        filters = [(k, v) for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")]

        def uri(n: int) -> str:
            return f"{path}?{urlencode([*filters, ('PageSize', page_size), ('Page', n)])}"

        more = (page + 1) * page_size < len(rows)
        payload = {
            "messages": messages,
            "page": page,
            "page_size": page_size,
            "start": page * page_size,
            "end": page * page_size + max(0, len(chunk) - 1),
            "uri": uri(page),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if more else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
        }
        return web.json_response(payload)

    def _resource(self, sid: str, to: str, from_: str, body: str, form: dict[str, str],
                  direction: str = "outbound-api") -> dict[str, Any]:
        now = formatdate(usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": direction,
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to,
            "uri": uri,
        }

    # -- status callbacks -------------------------------------------------------------
    def _schedule_callbacks(self, sid: str, to: str, from_: str, url: str | None) -> None:
        if not url or not self.posts_callbacks:
            return
        final, code = self.delivery_outcomes.get(to, ("delivered", None))
        steps = ["queued", "sent", final] if final in ("delivered", "undelivered") else ["queued", final]
        for status in steps:
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
                "From": from_,
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": to,
            }
            if status in ("undelivered", "failed") and code is not None:
                params["ErrorCode"] = str(code)
            self.schedule_callback(url, partial(self.post_signed, url, params))

    async def post_signed(self, url: str, params: dict[str, str]) -> int:
        """POST ``params`` form-encoded to ``url`` with Twilio's ``X-Twilio-Signature``."""
        return (await self._post_signed(url, params))[0]

    async def _post_signed(self, url: str, params: dict[str, str]) -> tuple[int, str]:
        assert self.session is not None
        signature = self.validator.compute_signature(url, params)
        async with self.session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
            answer = await resp.text()
            self.callbacks_sent.append({"url": url, "params": params, "signature": signature, "status": resp.status})
            return resp.status, answer

    # -- inbound SMS --------------------------------------------------------------------
    async def inject_inbound(self, from_: str, to: str, body: str, url: str | None = None) -> int:
        """Deliver an inbound SMS to our webhook the way Twilio does; returns the webhook's HTTP status."""
        target = url or self.inbound_url
        if not target:
            raise ValueError("no inbound_url configured")
        sid = "SM" + uuid.uuid4().hex
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": str(num_segments(body)),
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        status, answer = await self._post_signed(target, params)
        if status == 200:
            self._send_replies(answer, to=from_, from_=to)
        return status

    def _send_replies(self, twiml: str, *, to: str, from_: str) -> None:
        """What Twilio does with a ``<Message>`` in the webhook's TwiML: a message to the sender, not made
        through the Messages API (so no touch of ours recorded its SID)."""
        try:
            root = SafeET.fromstring(twiml)
        except SafeET.ParseError:
            return
        for reply in root.iter("Message"):
            body = reply.text or ""
            self._by_to[to].append({"sid": "SM" + uuid.uuid4().hex, "to": to, "from": from_, "body": body,
                                    "form": {}, "at": time.time(), "direction": "outbound-reply"})

    async def _admin_inbound(self, request: web.Request) -> web.Response:
        data = await request.json()
        status = await self.inject_inbound(data["from"], data["to"], data["body"], data.get("url"))
        return web.json_response({"status": status})
