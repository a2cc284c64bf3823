"""A receiving system for journeys' ``webhook`` steps (the CRM of the demo and the tests).

It checks what a careful receiver checks, independently of our sender (``channels.webhook``):

- the signature ``X-Journeys-Signature: t=<unix>,v1=<hex>``, HMAC-SHA256 with the shared secret
  over ``"<t>.<body>"``, and that ``t`` is within ``tolerance_s`` of its clock: otherwise 401;
- the body is a JSON object: otherwise 400;
- the ``Idempotency-Key``: a key it has already taken is answered 200 again without being taken
  twice (``counts["replayed"]``), so the sender may retry anything.

Faults (``standins.faults``) as the other stand-ins: ``5xx`` (refused before taking it),
``5xx_after_accept`` and ``timeout`` (taken, then the answer fails or never comes), ``429``,
``permanent`` (422). The accepted log's key is the idempotency key: a key in it twice would be a
case opened twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from aiohttp import web

from standins.base import Standin
from standins.faults import Accepted, Fault, FaultPlan


def _fault_reply(fault: Fault) -> web.Response:
    if fault == "5xx":
        return web.Response(status=503, text="Service Unavailable")
    if fault == "429":
        return web.Response(status=429, text="Too Many Requests")
    if fault == "permanent":
        return web.json_response({"error": "case type not accepted"}, status=422)
    return web.Response(status=504, text="Gateway Timeout")


class WebhookReceiverStandin(Standin):
    kind = "webhook"

    def __init__(self, secret: str = "standin-webhook-secret", *, path: str = "/cases",  # nosec B107 # test secret on loopback
                 tolerance_s: int = 300, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.secret = secret.encode()
        self.path = path
        self.tolerance_s = tolerance_s
        self.bodies: dict[str, dict[str, Any]] = {}  # idempotency key -> body taken

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.receive)]

    def reset(self) -> None:
        super().reset()
        self.bodies.clear()

    def _signed(self, header: str, raw: bytes) -> bool:
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        stamp, given = fields.get("t", ""), fields.get("v1", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > self.tolerance_s:
            return False
        expected = hmac.new(self.secret, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, given)

    async def receive(self, request: web.Request) -> web.Response:
        self.counts["requests"] += 1
        raw = await request.read()
        if not self._signed(request.headers.get("X-Journeys-Signature", ""), raw):
            self.counts["bad_signature"] += 1
            return web.json_response({"error": "bad signature"}, status=401)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response({"error": "body is not a JSON object"}, status=400)
        key = request.headers.get("Idempotency-Key")
        await self.faults.latency()
        fault = self.faults.draw()
        refusal = await self.faults.refusal(fault, _fault_reply)
        if refusal is not None:
            return refusal
        if key and key in self.bodies:
            self.counts["replayed"] += 1
        else:
            if key:
                self.bodies[key] = body
            self.log.add(Accepted(f"case-{len(self.log) + 1}", str(body.get("customer_id", "")), key, body))
            self.counts["accepted"] += 1
        failed = await self.faults.after_accept(fault, _fault_reply)
        if failed is not None:
            return failed
        return web.json_response({"ok": True}, status=201)
