"""Stand-in for the WeChat Official Account API: access token, template messages, event push.

- ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` →
  ``{access_token, expires_in}`` (lifetime configurable); wrong appid/secret →
  errcode 40013/40125. As WeChat documents, each fetch invalidates the tokens fetched
  before it once ``token_grace_s`` (5 minutes) has passed, so processes that fetch a
  token each for themselves take turns breaking each other's. ``revoke_tokens()`` makes
  every issued token invalid at once.
- ``POST /cgi-bin/message/template/send?access_token=`` with
  ``{touser, template_id, url, data, client_msg_id}`` → ``{errcode, errmsg, msgid}``:
  41001 no token, 40001 unknown token, 42001 expired, 43004 not subscribed,
  40003 invalid openid, 40037 invalid template id, 47003 a data value over its type's limit
  (``thing1`` 20 characters, ``phrase2`` 5, ...). A repeat of an accepted
  (openid, client_msg_id) within ``dedup_window_s`` (600 s, as WeChat documents) is
  not sent again: it is answered 45065 with the first msgid (what WeChat's mass-send
  API answers for a repeated clientmsgid; the template API does not document its reply).
  ``forced_errcodes`` answers an openid's sends with any errcode (45009 the day's quota,
  48001 the API not granted); with ``ip_whitelist`` set, a call from another address is
  answered 40164 ("invalid ip ..., not in whitelist") at the token endpoint and the API alike.
  The transient "429" fault is 45011, WeChat's per-minute limit.
- After a send, a ``TEMPLATESENDJOBFINISH`` event (XML) is POSTed to
  ``callback_url`` with ``signature``/``timestamp``/``nonce``/``openid`` query
  parameters, signature = sha1 of the sorted (token, timestamp, nonce);
  Status ``success``, ``failed:user block`` or ``failed: system failed``.
- With ``encoding_aes_key`` (safe mode) the pushes are encrypted as WeChat encrypts them:
  the body is ``<xml><ToUserName/><Encrypt/></xml>``, ``Encrypt`` = base64 of AES-256-CBC
  (key = base64decode(EncodingAESKey + "="), IV = its first 16 bytes, PKCS#7 to 32-byte
  blocks) over 16 random bytes + the message length (4 bytes, big-endian) + the message +
  the appid; the query adds ``encrypt_type=aes`` and ``msg_signature`` = sha1 of the sorted
  (token, timestamp, nonce, Encrypt). Written here from the protocol, apart from our
  receiving side, so that a test through both checks one against the other.
- ``inject_text`` POSTs an inbound text message the same way (replies, TD);
  ``push_finish`` POSTs a send's finish event on demand; ``push_again`` sends a push again as
  it was, signature and nonce included (WeChat's retry of a push it got no answer to in 5 s).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import time
from functools import partial
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45047: "out of response count limit",
    45065: "clientmsgid exist",
    48001: "api unauthorized",
    47001: "data format error",
    47003: "argument invalid",
}


# WeChat's table of template parameter types: the longest value (characters) each takes; a send
# with a longer one is refused with 47003. The type is the field name's prefix (thing1, phrase2).
_TYPE_LIMITS = {"thing": 20, "number": 32, "letter": 32, "symbol": 5, "character_string": 32,
                "phone_number": 17, "car_number": 8, "name": 20, "phrase": 5}


def _over_type_limit(field: str, value: str) -> bool:
    kind = field.rstrip(string.digits)
    if kind not in _TYPE_LIMITS:
        return False
    limit = 10 if kind == "name" and not value.isascii() else _TYPE_LIMITS[kind]
    return len(value) > limit


def errcode_reply(errcode: int, **extra: Any) -> web.Response:
    payload = {"errcode": errcode, "errmsg": _ERRMSG.get(errcode, "error"), **extra}
    return web.json_response(payload, dumps=partial(json.dumps, ensure_ascii=False))


def _fault_reply(fault: Fault) -> web.Response:
    if fault == "5xx":
        return web.Response(status=503, text="Service Unavailable")
    if fault == "429":
        # WeChat's "too many requests": the per-minute limit. 45009 is the day's quota, spent until midnight.
        return errcode_reply(45011)
    if fault == "permanent":
        return errcode_reply(43004)
    return errcode_reply(-1)  # what a client sees after a timeout


def signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's server signature: sha1 of the three strings sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # nosec B324 # SHA-1 is what WeChat's callback signature specifies


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def new_encoding_aes_key() -> str:
    """A random EncodingAESKey: 43 letters and digits, as the WeChat admin console makes them."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(43))


def safe_mode_encrypt(message: str | bytes, encoding_aes_key: str, appid: str,
                      random_prefix: bytes | None = None) -> str:
    """WeChat's ``Encrypt`` value for ``message`` (see the module doc); ``random_prefix`` (16 bytes)
    is fixed only to reproduce a published example."""
    key = base64.b64decode(encoding_aes_key + "=")
    raw = message.encode() if isinstance(message, str) else message
    prefix = secrets.token_bytes(16) if random_prefix is None else random_prefix
    payload = prefix + len(raw).to_bytes(4, "big") + raw + appid.encode()
    pad = 32 - len(payload) % 32
    payload += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(payload) + encryptor.finalize()).decode()


def msg_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Safe mode's body signature: sha1 of the four strings sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()  # nosec B324 # SHA-1 is what WeChat's message signature specifies


class WeChatStandin(CallbackStandin):
    kind = "wechat"
    callback_name = "event push"

    def __init__(  # nosec B107 # the stand-in's own test credentials; stand-ins run only on loopback
        self,
        appid: str = "wxstandin000000001",
        secret: str = "standin-app-secret",
        *,
        token_ttl: int = 7200,
        token_grace_s: float = 300.0,
        callback_url: str | None = None,
        callback_token: str = "standin-callback-token",
        account_id: str = "gh_standin00001",
        callbacks: bool = True,
        callback_workers: int = 8,
        faults: FaultPlan | None = None,
        templates: list[str] | None = None,
        dedup_window_s: float = 600.0,
        encoding_aes_key: str | None = None,
    ) -> None:
        super().__init__(faults, callbacks=callbacks, callback_workers=callback_workers)
        self.appid = appid
        self.secret = secret
        self.token_ttl = token_ttl
        self.token_grace_s = token_grace_s
        self.callback_url = callback_url
        self.callback_token = callback_token
        # Safe mode when set: pushes are encrypted and msg_signature signs the body.
        self.encoding_aes_key = encoding_aes_key
        self.account_id = account_id
        self.templates = set(templates) if templates is not None else None
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.unsubscribed: set[str] = set()
        self.forced_errcodes: dict[str, int] = {}  # openid -> errcode on send
        self.delivery_status: dict[str, str] = {}  # openid -> Status in the finish event
        self.dedup_window_s = dedup_window_s
        self._dedup: dict[tuple[str, str], tuple[int, float]] = {}  # (openid, client_msg_id) -> (msgid, when)
        self._msgid = 400_000_000

    # The official account's IP whitelist: a call from any other address is answered 40164, at the token
    # endpoint and the API alike (None: no whitelist, as for an account that has not set one).
    ip_whitelist: frozenset[str] | None = None

    def _not_whitelisted(self, request: web.Request) -> web.Response | None:
        ip = request.remote or ""
        if self.ip_whitelist is None or ip in self.ip_whitelist:
            return None
        return errcode_reply(40164, errmsg=f"invalid ip {ip} ipv6 ::ffff:{ip}, not in whitelist "
                                           f"rid: {secrets.token_hex(8)}")

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
        if (refused := self._not_whitelisted(request)) is not None:
            return refused
        q = request.query
        if q.get("grant_type") != "client_credential":
            return errcode_reply(40002)
        if q.get("appid") != self.appid:
            return errcode_reply(40013)
        if q.get("secret") != self.secret:
            return errcode_reply(40125)
        token = secrets.token_urlsafe(96)
        now = time.monotonic()
        # "Fetching again invalidates the previous access_token; old and new both work for 5 minutes."
        for earlier, expiry in self.tokens.items():
            self.tokens[earlier] = min(expiry, now + self.token_grace_s)
        self.tokens[token] = now + self.token_ttl
        return web.json_response({"access_token": token, "expires_in": self.token_ttl})

    async def template_send(self, request: web.Request) -> web.Response:
        self.counts["send"] += 1
        if (refused := self._not_whitelisted(request)) is not None:
            return refused
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
        data = body.get("data")
        for field, item in (data.items() if isinstance(data, dict) else ()):
            value = str(item.get("value", "")) if isinstance(item, dict) else ""
            if _over_type_limit(str(field), value):
                return errcode_reply(47003, errmsg=f"argument invalid! data.{field}.value exceeds limit")
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
                failed = await self.faults.after_accept(fault, _fault_reply)
                if failed is not None:
                    return failed
                return errcode_reply(45065, msgid=seen[0])
        self._msgid += 1
        msgid = self._msgid
        detail = {"template_id": template_id, "data": body.get("data"), "url": body.get("url")}
        self.log.add(Accepted(str(msgid), openid, key, detail))
        self.counts["accepted"] += 1
        if key:
            self._dedup[(openid, str(key))] = (msgid, time.monotonic())
        self._schedule_finish(openid, msgid)
        failed = await self.faults.after_accept(fault, _fault_reply)
        if failed is not None:
            return failed
        return errcode_reply(0, msgid=msgid)

    # -- pushes to our endpoint ---------------------------------------------------------
    def _schedule_finish(self, openid: str, msgid: int) -> None:
        if not self.callback_url or not self.posts_callbacks:
            return
        url = self.callback_url
        self.schedule_callback(url, partial(self.push, self.finish_event(openid, msgid), openid, url))

    def finish_event(self, openid: str, msgid: int | str) -> str:
        """The TEMPLATESENDJOBFINISH event for a send, its Status from ``delivery_status``."""
        status = self.delivery_status.get(openid, "success")
        return (
            f"<xml><ToUserName>{cdata(self.account_id)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType>{cdata('event')}</MsgType>"
            f"<Event>{cdata('TEMPLATESENDJOBFINISH')}</Event>"
            f"<MsgID>{msgid}</MsgID>"
            f"<Status>{cdata(status)}</Status></xml>"
        )

    async def push_finish(self, openid: str, msgid: int | str, url: str | None = None) -> int:
        """Push a send's TEMPLATESENDJOBFINISH now (as after a send, once the receiving side is ready for it)."""
        return await self.push(self.finish_event(openid, msgid), openid, url)

    def signed_query(self, openid: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        nonce = str(secrets.randbelow(10**10))
        return {
            "signature": signature(self.callback_token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
        }

    def safe_mode_body(self, xml: str, query: dict[str, str]) -> str:
        """The encrypted body for ``xml``; adds ``encrypt_type`` and ``msg_signature`` to ``query``."""
        assert self.encoding_aes_key is not None
        encrypted = safe_mode_encrypt(xml, self.encoding_aes_key, self.appid)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = msg_signature(self.callback_token, query["timestamp"], query["nonce"], encrypted)
        return f"<xml><ToUserName>{cdata(self.account_id)}</ToUserName><Encrypt>{cdata(encrypted)}</Encrypt></xml>"

    async def push(self, xml: str, openid: str, url: str | None = None) -> int:
        """POST an XML message to our endpoint, signed (and in safe mode encrypted) as WeChat does; returns
        the HTTP status."""
        target = url or self.callback_url
        if not target:
            raise ValueError("no callback_url configured")
        assert self.session is not None
        query = self.signed_query(openid)
        body = self.safe_mode_body(xml, query) if self.encoding_aes_key else xml
        async with self.session.post(
            target, params=query, data=body.encode(), headers={"Content-Type": "text/xml"}
        ) as resp:
            reply = await resp.text()
            record = {"url": target, "query": query, "xml": xml, "body": body, "status": resp.status,
                      "reply": reply}
            self.callbacks_sent.append(record)
            return resp.status

    async def push_again(self, record: dict[str, Any]) -> int:
        """POST a push of ``callbacks_sent`` again as it was, query, signature and body: WeChat's retry of a
        push it got no answer to within 5 seconds ("断掉连接，并且重新发起请求，总共重试三次"); its documentation
        says to recognise the repeat by MsgId (an event's by FromUserName + CreateTime)."""
        assert self.session is not None
        async with self.session.post(record["url"], params=record["query"], data=record["body"].encode(),
                                     headers={"Content-Type": "text/xml"}) as resp:
            reply = await resp.text()
            self.callbacks_sent.append({**record, "status": resp.status, "reply": reply})
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
