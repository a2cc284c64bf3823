"""Stand-in for JPush (极光推送) REST API v3: push, and the delivery status of what was pushed.

Written from the documented protocol (docs.jiguang.cn, Push API v3 and Report API v3), apart from
our adapter (``channels.push_jpush``), so that a test through both checks one against the other:

- ``POST /v3/push``: HTTP Basic auth ``base64(appKey:masterSecret)`` (else 401 with error code
  1004); a JSON push object whose ``audience`` is ``{"registration_id": [...]}`` and which has a
  ``notification`` or ``message`` (else 400, code 1003), within JPush's byte limits (else 400,
  code 1005: ``"ios":{...}`` at most 3,584 bytes, Android's notification and message 4,000).
  Answers 200 ``{"sendno", "msg_id"}``; a registration id that is not a device of this app
  (``unknown_devices``) answers 400 with code 1011 "cannot find user by this audience".
- ``POST /v3/status/message`` (the report API, same base here): ``{"msg_id", "registration_ids"}``
  → ``{"<id>": {"status": S}}``, 0 delivered (the default once pushed), 1 not delivered (the ids in
  ``offline_devices``), 3 not a target of that message.

Faults (``standins.faults``): ``5xx`` (503 before accepting), ``5xx_after_accept``, ``timeout``,
``429`` (code 2002 rate limit), ``permanent`` (code 1011). The accepted log's key is the
``sendno`` the sender gave: a key accepted twice means a device was pushed twice.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from standins.base import Standin
from standins.faults import Accepted, Fault, FaultPlan

_MESSAGES = {
    1003: "Parameter value is invalid",
    1005: "Msg content too long",
    1004: "Authentication failed",
    1011: "cannot find user by this audience",
    2002: "API call rate limit reached",
}


def error_reply(status: int, code: int) -> web.Response:
    return web.json_response({"error": {"code": code, "message": _MESSAGES.get(code, "error")}}, status=status)


def _fault_reply(fault: Fault) -> web.Response:
    if fault == "5xx":
        return web.Response(status=503, text="Service Unavailable")
    if fault == "429":
        return error_reply(429, 2002)
    if fault == "permanent":
        return error_reply(400, 1011)
    return web.Response(status=504, text="Gateway Timeout")  # after a timeout, never read


def _too_large(body: dict[str, Any]) -> bool:
    """JPush's documented limits (code 1005), in UTF-8 bytes of the JSON as written: ``"ios":{...}``
    at most 3,584; Android's notification plus message at most 4,000."""
    notification = body.get("notification") or {}
    ios = len(json.dumps({"ios": notification.get("ios", {})}, ensure_ascii=False, separators=(",", ":")).encode())
    android = {k: v for k, v in notification.items() if k != "ios"}
    size = len(json.dumps(android, ensure_ascii=False, separators=(",", ":")).encode())
    if "message" in body:
        size += len(json.dumps(body["message"], ensure_ascii=False, separators=(",", ":")).encode())
    return ios > 3584 or size > 4000


class JPushStandin(Standin):
    kind = "jpush"

    def __init__(self, app_key: str = "standinappkey0000000001", master_secret: str = "standin-master-secret",  # nosec B107 # the stand-in's own test credentials on loopback
                 *, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.app_key = app_key
        self.master_secret = master_secret
        self.auth = "Basic " + base64.b64encode(f"{app_key}:{master_secret}".encode()).decode()
        self.unknown_devices: set[str] = set()
        self.offline_devices: set[str] = set()
        self.pushed: dict[str, str] = {}  # msg_id -> registration id
        self._msg_id = 18_100_000_000

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v3/push", self.push), web.post("/v3/status/message", self.status)]

    def reset(self) -> None:
        super().reset()
        self.pushed.clear()

    async def _authorized_body(self, request: web.Request, endpoint: str) -> Any:
        """The JSON body of a call with this app's credentials, counted under ``endpoint``; else the
        refusal to answer with (a ``web.Response``: 401 code 1004, or 400 code 1003 for no JSON)."""
        self.counts[endpoint] += 1
        if request.headers.get("Authorization") != self.auth:
            return error_reply(401, 1004)
        try:
            return json.loads(await request.read())
        except ValueError:
            return error_reply(400, 1003)

    async def push(self, request: web.Request) -> web.Response:
        body = await self._authorized_body(request, "push")
        if isinstance(body, web.Response):
            return body
        audience = body.get("audience") if isinstance(body, dict) else None
        ids = audience.get("registration_id") if isinstance(audience, dict) else None
        if (not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids)
                or not (body.get("notification") or body.get("message"))):
            return error_reply(400, 1003)
        if _too_large(body):
            return error_reply(400, 1005)
        await self.faults.latency()
        if any(i in self.unknown_devices for i in ids):
            return error_reply(400, 1011)
        fault = self.faults.draw()
        refusal = await self.faults.refusal(fault, _fault_reply)
        if refusal is not None:
            return refusal
        self._msg_id += 1
        msg_id = str(self._msg_id)
        sendno = (body.get("options") or {}).get("sendno")
        notification = body.get("notification") or {}
        for rid in ids:
            self.pushed[msg_id] = rid
            self.log.add(Accepted(msg_id, rid, str(sendno) if sendno is not None else None,
                                  {"alert": notification.get("alert"),
                                   "title": (notification.get("android") or {}).get("title")}))
        self.counts["accepted"] += 1
        failed = await self.faults.after_accept(fault, _fault_reply)
        if failed is not None:
            return failed
        return web.json_response({"sendno": str(sendno if sendno is not None else 0), "msg_id": msg_id})

    async def status(self, request: web.Request) -> web.Response:
        body = await self._authorized_body(request, "status")
        if isinstance(body, web.Response):
            return body
        try:
            msg_id, ids = str(body["msg_id"]), list(body["registration_ids"])
        except (KeyError, TypeError):
            return error_reply(400, 1003)
        target = self.pushed.get(msg_id)
        answer = {rid: {"status": 3 if rid != target else 1 if rid in self.offline_devices else 0} for rid in ids}
        return web.json_response(answer)
