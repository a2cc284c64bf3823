"""SMS through the official Twilio SDK (Messages API, async).

The SDK builds the request, authenticates and turns error replies into
``TwilioRestException`` with Twilio's error code; we give it our own HTTP client
through its ``http_client`` hook because the bundled ``AsyncTwilioHttpClient``
passes ``timeout=None`` to aiohttp on every request (no timeout at all, so a
hung provider would hang the batch) and logs every request at INFO level.

The SDK's client still supplies every request's headers, credentials and host and turns
an error reply into its exception; a send hands the Messages form to the hook directly
(``TwilioSmsAdapter._create``) instead of through ``create_async``'s layers. What the hook
leaves out is what costs and gives nothing here (the send path was profiled at about
2,000 sends/s with the SDK's own handling): the form is encoded with a byte table
rather than ``urllib``'s per-character quoting, the endpoint URL and the headers are made
once, the session keeps no cookie jar (Twilio's API sets none we use), and the reply to a
successful create is parsed once for the fields we read (``sid``, ``status``) rather than
into a ``MessageInstance`` (dates, prices, URIs per message).

The touch's idempotency key is appended to the StatusCallback URL as the
``touch_key`` query parameter: Twilio has no idempotency field on Messages, and
this way every status callback (signed over the full URL) names its touch even
before the Message SID is stored. Without such a field a second create is a second SMS,
so a send that may have been taken (its reply lost, or a 5xx) is class ``unknown`` and
looked up in the Messages list (``engine.sending.reconcile``), never repeated here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import aiohttp
import orjson
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from yarl import URL

from channels.base import ErrorClass, OutboundMessage, SendResult
from channels.batching import run_bounded
from channels.errors import CONNECT_ERROR, CONNECTION_LOST, TIMEOUT, classify_twilio
from store.masking import mask_phone

log = logging.getLogger(__name__)

TOUCH_KEY_PARAM = "touch_key"
DEFAULT_API_BASE = "https://api.twilio.com"


_SENTINEL = "TOUCHKEYSENTINEL0"  # unchanged by quoting


def with_touch_key(url: str, touch_key: str) -> str:
    """``url`` with ``touch_key=<key>`` in its query (replacing one already there)."""
    if _SENTINEL in url:
        return _with_touch_key(url, touch_key)
    # Every message of a batch has the same callback URL: it is taken apart once, and only
    # the key is quoted per message (quote_plus, as urlencode quotes it).
    head, tail = _callback_parts(url)
    return f"{head}{quote_plus(touch_key, safe=':/@')}{tail}"


@lru_cache(maxsize=64)
def _callback_parts(url: str) -> tuple[str, str]:
    head, _, tail = _with_touch_key(url, _SENTINEL).partition(_SENTINEL)
    return head, tail


def _with_touch_key(url: str, touch_key: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOUCH_KEY_PARAM]
    query.append((TOUCH_KEY_PARAM, touch_key))
    # Twilio signs the URL exactly as given and a receiver validates what it sees; ':' '/' '@'
    # are left unencoded because URL libraries (yarl, for one) decode them in queries, and then
    # a receiver rebuilding the URL from a parsed form would compute a different signature.
    return urlunsplit(parts._replace(query=urlencode(query, safe=":/@")))


# application/x-www-form-urlencoded as urllib.parse.quote_plus writes it: unreserved bytes as they
# are, space as '+', everything else %XX. Each run of other bytes (a Chinese body is mostly one or
# two) is hex-encoded in C at once instead of byte by byte in Python: a third less per body.
_FORM_UNSAFE_RUN = re.compile(rb"[^A-Za-z0-9_.~ -]+")


def _percent_run(run: re.Match[bytes]) -> bytes:
    return b"%" + run.group().hex("%").upper().encode("ascii")


# What a created Message keeps of Twilio's reply (the adapter reads sid and status).
_CREATED_FIELDS = ("sid", "status", "account_sid", "to", "from", "num_segments", "error_code", "error_message")


def form_quote(value: str) -> str:
    # Hex digits hold no space, so only the value's own spaces become '+'.
    return _FORM_UNSAFE_RUN.sub(_percent_run, value.encode()).replace(b" ", b"+").decode("ascii")


def form_encode(data: Mapping[str, object]) -> bytes:
    """``urlencode(data, doseq=True)``, the same bytes, faster for non-ASCII text."""
    parts: list[str] = []
    for key, value in data.items():
        name = form_quote(str(key))
        for item in value if isinstance(value, list | tuple) else (value,):
            parts.append(f"{name}={form_quote(str(item))}")
    return "&".join(parts).encode("ascii")


class AiohttpTwilioHttpClient(AsyncHttpClient):
    """The SDK's async HTTP hook on one pooled aiohttp session with a real timeout."""

    def __init__(self, *, timeout: float = 10.0, max_connections: int = 64) -> None:
        super().__init__(logger=log, is_async=True, timeout=timeout)
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._auth_header: dict[tuple[str, str], str] = {}
        self._urls: dict[str, URL] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily so that it binds to the loop that sends, not the one that built the adapter.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._client_timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        all_headers = dict(headers or {})
        body: bytes | None = None
        if data:
            # Encoded here rather than by aiohttp's FormData, which costs about a sixth of a send.
            body = form_encode(data)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth is not None:
            # Encoded once per credential pair instead of per request.
            header = self._auth_header.get(auth)
            if header is None:
                header = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
                self._auth_header[auth] = header
            all_headers["Authorization"] = header
        target = self._urls.get(url)
        if target is None:
            # The SDK hands over the same few URLs as strings; yarl would parse each one per request.
            target = URL(url)
            if len(self._urls) < 64:
                self._urls[url] = target
        method = method.upper()
        async with self._get_session().request(
            method,
            target,
            params=params,  # type: ignore[arg-type]
            data=body,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._client_timeout,
            allow_redirects=allow_redirects,
        ) as resp:
            raw = await resp.read()
            if method == "POST" and 200 <= resp.status < 300:
                try:
                    created = orjson.loads(raw)
                    raw = orjson.dumps({k: created.get(k) for k in _CREATED_FIELDS})
                except (orjson.JSONDecodeError, AttributeError):
                    pass  # not the JSON object expected: the SDK sees it whole and reports it
            # Twilio answers JSON in UTF-8; skip aiohttp's charset sniffing.
            return Response(resp.status, raw.decode("utf-8", errors="replace"), resp.headers)

    async def post_form(self, target: URL, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes, Any]:
        """POST an encoded form with headers made in full by the caller: the status, the body and the headers of
        the reply. ``request`` as a Messages create calls it (no redirects, the session's timeout), without its
        per-request copying and encoding, for a caller that sends the same headers to the same URL every time."""
        async with self._get_session().request("POST", target, data=body, headers=headers,
                                               allow_redirects=False) as resp:
            return resp.status, await resp.read(), resp.headers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Client(Client):
    """The SDK's client, building its request headers once per (method, headers) instead of per
    request: ``get_headers`` formats the User-Agent from platform calls on every send (about a
    tenth of one, profiled), and its result only depends on those two arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, str]] = {}

    def get_headers(self, method: str, headers: dict[str, str] | None) -> dict[str, str]:
        key = (method, tuple(sorted((headers or {}).items())))
        built = self._headers.get(key)
        if built is None:
            built = self._headers[key] = super().get_headers(method, dict(headers or {}))
        return dict(built)  # the SDK edits the dict it gets (DELETE drops Accept)

    def copy_non_none_values(self, data: Any) -> Any:
        # The SDK copies every form recursively to drop None; a Messages form is flat
        # (strings, and a list for MediaUrl), so one pass does the same.
        if isinstance(data, dict) and not any(isinstance(v, dict) for v in data.values()):
            return {k: ([x for x in v if x is not None] if isinstance(v, list) else v)
                    for k, v in data.items() if v is not None}
        return super().copy_non_none_values(data)


class TwilioSmsAdapter:
    """``ChannelAdapter`` for SMS: up to ``concurrency`` Messages API requests in flight."""

    channel = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        *,
        messaging_service_sid: str | None = None,
        api_base: str | None = None,
        concurrency: int = 48,
        timeout: float = 10.0,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("Twilio needs a From number or a Messaging Service SID")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.concurrency = concurrency
        self.http = AiohttpTwilioHttpClient(timeout=timeout, max_connections=concurrency)
        self.client = _Client(account_sid, auth_token, http_client=self.http)
        if api_base:
            # The SDK joins every Messages URL onto its Api domain's base_url.
            self.client.api.base_url = api_base.rstrip("/")
        self._semaphore = asyncio.BoundedSemaphore(concurrency)
        self._slot_holders: set[asyncio.Task[Any]] = set()
        self._sent: tuple[URL, dict[str, str], list[bytes]] | None = None

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        try:
            return await run_bounded(messages, self._send_in_slot, self.concurrency)
        finally:
            # Workers run as tasks of their own and give their slots back as they end; one run in the caller's
            # task (which lives on) gives its slot back here, with the batch.
            task = asyncio.current_task()
            if task is not None and task in self._slot_holders:
                task.remove_done_callback(self._give_back_slot)
                self._give_back_slot(task)

    async def _send_in_slot(self, message: OutboundMessage) -> SendResult:
        """``send_one`` for a worker of ``send_batch``: the worker takes one of the adapter's ``concurrency``
        slots at its first message and gives it back when it ends (its batch has no message left). Batches sent
        at once (a dispatcher's lanes and rate-paced chunks) have more workers than there are slots, and taking
        a slot per message parked a future and woke the worker's task once more for nearly every send."""
        task = asyncio.current_task()
        if task is None:
            return await self.send_one(message)
        if task not in self._slot_holders:
            await self._semaphore.acquire()
            self._slot_holders.add(task)
            task.add_done_callback(self._give_back_slot)
        return await self._send(message)

    def _give_back_slot(self, task: asyncio.Task[Any]) -> None:
        self._slot_holders.discard(task)
        self._semaphore.release()

    async def send_one(self, message: OutboundMessage) -> SendResult:
        async with self._semaphore:
            return await self._send(message)

    async def _send(self, message: OutboundMessage) -> SendResult:
        """One message, in a slot the caller holds."""
        callback = message.status_callback_url
        try:
            # Sent as rendered: rendering adds the marketing opt-out line per locale
            # and counts segments with it, so the adapter must not alter the text.
            created = await self._create(message.to, message.content.text,
                                         with_touch_key(callback, message.touch_key) if callback else None)
        except (TwilioRestException, TwilioServiceException) as exc:
            code = exc.code if isinstance(exc.code, int) else None
            # A 5xx is class unknown (the message may exist at Twilio): dispatch has it looked
            # up in the Messages list rather than sent again (channels.errors).
            verdict = classify_twilio(exc.status, code)
            log.info("sms to %s %s: %s %s", mask_phone(message.to),
                     "not confirmed" if verdict.error_class == "unknown" else "refused", code, verdict.reason)
            return SendResult(
                message.touch_key,
                ok=False,
                error_class=verdict.error_class,
                error_code=str(code if code is not None else exc.status),
                error_reason=verdict.reason,
            )
        except aiohttp.ConnectionTimeoutError:
            # Timed out while connecting: the request was never written, so it is safe to retry.
            return _transport_failure(message, CONNECT_ERROR, "timed out connecting to Twilio")
        except TimeoutError:
            return _transport_failure(message, TIMEOUT, "no reply from Twilio within the timeout")
        except aiohttp.ClientConnectorError as exc:
            return _transport_failure(message, CONNECT_ERROR, f"cannot connect to Twilio: {exc.os_error}")
        except aiohttp.ClientError as exc:
            return _transport_failure(message, CONNECTION_LOST, f"connection lost: {type(exc).__name__}")
        return SendResult(message.touch_key, ok=True, provider_message_id=created.get("sid"),
                          provider_status=created.get("status"))

    async def _create(self, to: str, body: str, status_callback: str | None) -> dict[str, Any]:
        """``client.messages.create_async(to=, body=, from_=, messaging_service_sid=, status_callback=)``: the
        same form, headers, credentials and host (edge and region), and the same ``TwilioRestException`` for an
        error reply, made by the SDK's client, but handed to its HTTP hook directly. Through ``create_async``
        a send passes six coroutine layers of the SDK, each resumed at every step of the request, and its
        reply is parsed into a ``MessageInstance``: about a fifth of a send's CPU (profiled, 20,000 sends to
        the stand-in). What every create sends alike (URL, headers, sender) is made once, and the reply is parsed
        once, here, rather than cut down in the hook and parsed again. Answers the created message's fields
        (``sid``, ``status``)."""
        sent = self._sent
        if sent is None:  # made at the first send: the API base may be set after the adapter is made
            sent = self._sent = self._create_request()
        target, headers, sender = sent
        # The fields in the SDK's order; what it would leave unset is left out.
        parts = [b"To=" + form_quote(to).encode("ascii")]
        if status_callback:
            parts.append(b"StatusCallback=" + form_quote(status_callback).encode("ascii"))
        parts.extend(sender)
        parts.append(b"Body=" + form_quote(body).encode("ascii"))
        status, raw, reply_headers = await self.http.post_form(target, b"&".join(parts), headers)
        if not 200 <= status < 300:
            # Twilio answers JSON in UTF-8; the SDK reads the error from the reply as its hook returns it.
            response = Response(status, raw.decode("utf-8", errors="replace"), reply_headers)
            messages = self.client.messages
            raise messages._version.exception("POST", messages._uri, response, "Unable to create record")
        created: dict[str, Any] = orjson.loads(raw)
        return created

    def _create_request(self) -> tuple[URL, dict[str, str], list[bytes]]:
        """What every create sends alike, made once: the URL, the headers (the SDK client's, with the credentials
        and the form's type, as ``AiohttpTwilioHttpClient.request`` adds them) and the sender's encoded fields."""
        messages = self.client.messages
        version = messages._version
        url = self.client.get_hostname(version.domain.absolute_url(version.relative_uri(messages._uri)))
        headers = self.client.get_headers("POST", _CREATE_HEADERS)
        auth = self.client.get_auth(None)
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        sender = [f"{name}={form_quote(value)}".encode("ascii") for name, value in
                  (("From", self.from_number), ("MessagingServiceSid", self.messaging_service_sid)) if value]
        return URL(url), headers, sender

    async def aclose(self) -> None:
        await self.http.close()


# The headers the SDK's Messages create sends (its client adds the rest: User-Agent, credentials, ...).
_CREATE_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def _transport_failure(message: OutboundMessage, code: str, reason: str) -> SendResult:
    log.info("sms to %s not confirmed: %s", mask_phone(message.to), reason)
    # Only a failure to connect proves Twilio never saw the request; after that, it may have.
    klass: ErrorClass = "retryable" if code == CONNECT_ERROR else "unknown"
    return SendResult(message.touch_key, ok=False, error_class=klass, error_code=code, error_reason=reason)
