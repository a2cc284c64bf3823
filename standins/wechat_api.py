"""Stand-in for the WeChat Official Account API: access token, template messages, event push.

- ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` →
  ``{access_token, expires_in}`` (lifetime configurable); wrong appid/secret →
  errcode 40013/40125. ``revoke_tokens()`` makes every issued token invalid
  (as when another process fetched a new one).
- ``POST /cgi-bin/message/template/send?access_token=`` with
  ``{touser, template_id, url, data, client_msg_id}`` → ``{errcode, errmsg, msgid}``:
  41001 no token, 40001 unknown token, 42001 expired, 43004 not subscribed,
  40003 invalid openid, 40037 invalid template id. A repeat of an accepted
  (openid, client_msg_id) within ``dedup_window_s`` (600 s, as WeChat documents) is
  not sent again: it is answered 45065 with the first msgid (what WeChat's mass-send
  API answers for a repeated clientmsgid; the template API does not document its reply).
- After a send, a ``TEMPLATESENDJOBFINISH`` event (XML) is POSTed to
  ``callback_url`` with ``signature``/``timestamp``/``nonce``/``openid`` query
  parameters, signature = sha1 of the sorted (token, timestamp, nonce);
  Status ``success``, ``failed:user block`` or ``failed: system failed``.
- ``inject_text`` POSTs an inbound text message the same way (replies, TD).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from functools import partial
from typing import Any

from aiohttp import web

from standins.base import CallbackStandin
from standins.faults import Accepted, Fault, FaultPlan

_ERRMSG = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40013: "invalid appid",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45065: "clientmsgid exist",
    47001: "data format error",
}


def errcode_reply(errcode: int, **extra: Any) -> web.Response:
    payload = {"errcode": errcode, "errmsg": _ERRMSG.get(errcode, "error"), **extra}
    return web.json_response(payload, dumps=partial(json.dumps, ensure_ascii=False))


def _fault_reply(fault: Fault) -> web.Response:
    if fault == "5xx":
        return web.Response(status=503, text="Service Unavailable")
    if fault == "429":
        return errcode_reply(45009)
    if fault == "permanent":
        return errcode_reply(43004)
    return errcode_reply(-1)  # what a client sees after a timeout


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's server signature: sha1 of the three strings sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class WeChatStandin(CallbackStandin):
    kind = "wechat"
    callback_name = "event push"

    def __init__(
        self,
        appid: str = "wxstandin000000001",
        secret: str = "standin-app-secret",
        *,
        token_ttl: int = 7200,
        callback_url: str | None = None,
        callback_token: str = "standin-callback-token",
        account_id: str = "gh_standin00001",
        callbacks: bool = True,
        callback_workers: int = 8,
        faults: FaultPlan | None = None,
        templates: list[str] | None = None,
        dedup_window_s: float = 600.0,
    ) -> None:
        super().__init__(faults, callbacks=callbacks, callback_workers=callback_workers)
        self.appid = appid
        self.secret = secret
        self.token_ttl = token_ttl
        self.callback_url = callback_url
        self.callback_token = callback_token
        self.account_id = account_id
        self.templates = set(templates) if templates is not None else None
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.unsubscribed: set[str] = set()
        self.forced_errcodes: dict[str, int] = {}  # openid -> errcode on send
        self.delivery_status: dict[str, str] = {}  # openid -> Status in the finish event
        self.dedup_window_s = dedup_window_s
        self._dedup: dict[tuple[str, str], tuple[int, float]] = {}  # (openid, client_msg_id) -> (msgid, when)
        self._msgid = 400_000_000

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/cgi-bin/token", self.token),
            web.post("/cgi-bin/message/template/send", self.template_send),
        ]

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def reset(self) -> None:
        super().reset()
        self._dedup.clear()

    # -- API ------------------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        self.counts["token"] += 1
        q = request.query
        if q.get("grant_type") != "client_credential":
            return errcode_reply(40002)
        if q.get("appid") != self.appid:
            return errcode_reply(40013)
        if q.get("secret") != self.secret:
            return errcode_reply(40125)
        token = secrets.token_urlsafe(96)
        self.tokens[token] = time.monotonic() + self.token_ttl
        return web.json_response({"access_token": token, "expires_in": self.token_ttl})

    async def template_send(self, request: web.Request) -> web.Response:
        self.counts["send"] += 1
        token = request.query.get("access_token")
        if not token:
            return errcode_reply(41001)
        expiry = self.tokens.get(token)
        if expiry is None:
            self.counts["errcode:40001"] += 1
            return errcode_reply(40001)
        if time.monotonic() >= expiry:
            self.counts["errcode:42001"] += 1
            return errcode_reply(42001)
        raw = await request.read()
        if not raw:
            return errcode_reply(44002)
        try:
            body = json.loads(raw)
        except ValueError:
            return errcode_reply(47001)
        await self.faults.latency()

        openid = str(body.get("touser", ""))
        template_id = str(body.get("template_id", ""))
        if not openid or len(openid) > 64:
            return errcode_reply(40003)
        if not template_id or (self.templates is not None and template_id not in self.templates):
            return errcode_reply(40037)
        if openid in self.forced_errcodes:
            return errcode_reply(self.forced_errcodes[openid])
        if openid in self.unsubscribed:
            return errcode_reply(43004)

        fault = self.faults.draw()
        refusal = await self.faults.refusal(fault, _fault_reply)
        if refusal is not None:
            return refusal

        key = body.get("client_msg_id")
        if key:
            seen = self._dedup.get((openid, str(key)))
            if seen is not None and time.monotonic() - seen[1] < self.dedup_window_s:
                self.counts["deduplicated"] += 1
                if await self.faults.lost_reply(fault):
                    return _fault_reply("timeout")
                return errcode_reply(45065, msgid=seen[0])
        self._msgid += 1
        msgid = self._msgid
        detail = {"template_id": template_id, "data": body.get("data"), "url": body.get("url")}
        self.log.add(Accepted(str(msgid), openid, key, detail))
        self.counts["accepted"] += 1
        if key:
            self._dedup[(openid, str(key))] = (msgid, time.monotonic())
        self._schedule_finish(openid, msgid)
        if await self.faults.lost_reply(fault):
            return _fault_reply("timeout")
        return errcode_reply(0, msgid=msgid)

    # -- pushes to our endpoint ---------------------------------------------------------
    def _schedule_finish(self, openid: str, msgid: int) -> None:
        if not self.callback_url or not self.posts_callbacks:
            return
        status = self.delivery_status.get(openid, "success")
        xml = (
            f"<xml><ToUserName>{cdata(self.account_id)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType>{cdata('event')}</MsgType>"
            f"<Event>{cdata('TEMPLATESENDJOBFINISH')}</Event>"
            f"<MsgID>{msgid}</MsgID>"
            f"<Status>{cdata(status)}</Status></xml>"
        )
        url = self.callback_url
        self.schedule_callback(url, partial(self.push, xml, openid, url))

    def signed_query(self, openid: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        nonce = str(secrets.randbelow(10**10))
        return {
            "signature": signature(self.callback_token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
        }

    async def push(self, xml: str, openid: str, url: str | None = None) -> int:
        """POST an XML message to our endpoint, signed as WeChat signs; returns the HTTP status."""
        target = url or self.callback_url
        if not target:
            raise ValueError("no callback_url configured")
        assert self.session is not None
        query = self.signed_query(openid)
        async with self.session.post(
            target, params=query, data=xml.encode(), headers={"Content-Type": "text/xml"}
        ) as resp:
            reply = await resp.text()
            record = {"url": target, "query": query, "xml": xml, "status": resp.status, "reply": reply}
            self.callbacks_sent.append(record)
            return resp.status

    async def inject_text(self, openid: str, content: str, url: str | None = None) -> int:
        """An inbound text message from a follower (e.g. a reply or ``TD``)."""
        self._msgid += 1
        xml = (
            f"<xml><ToUserName>{cdata(self.account_id)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType>{cdata('text')}</MsgType>"
            f"<Content>{cdata(content)}</Content>"
            f"<MsgId>{self._msgid}</MsgId></xml>"
        )
        return await self.push(xml, openid, url)
