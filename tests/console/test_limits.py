"""Request limits on the real server: credentials before bodies, body caps per route, header and keep-alive timeouts.

The console runs under real uvicorn with the options ``journeys serve`` uses, and the clients
are raw sockets, so what is measured is what reaches the wire: whether the server answers
before a body is sent, whether it stops reading an upload, and whether it closes connections
that never finish a request head. Timeouts are set to a second and every wait has a generous
deadline; nothing here asserts how fast anything happened.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import httpx
import pytest
from starlette.testclient import TestClient

from console.app import create_app
from console.limits import (
    DEFAULT_BODY_LIMITS,
    BodyLimits,
    HeaderTimeoutH11Protocol,
    server_options,
)
from tests.console.conftest import API_KEY, CSRF_RE, PASSWORD, Seed, login
from tests.uvicorn_support import uvicorn_thread

MB = 1 << 20
HUNDRED_MB = 100 * MB
# Far longer than any timeout under test: a connection still open after this is a failure.
DEADLINE = 30.0
EVENT = {"event_id": "ev-limits", "type": "survey.answered", "customer_id": "C1",
         "occurred_at": "2026-11-22T08:00:00+08:00", "data": {"survey": "nps", "nps": 4}}


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def serving(db_url: str) -> AbstractContextManager[int]:
    """The console under uvicorn with ``journeys serve``'s options, on an ephemeral port."""
    return uvicorn_thread(create_app(db_url), start_within=DEADLINE, stop_within=DEADLINE, **server_options())


@pytest.fixture
def port(db_url: str, console_env: None, seed: Seed, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("JOURNEYS_HEADER_TIMEOUT", "1")
    monkeypatch.setenv("JOURNEYS_KEEPALIVE_TIMEOUT", "1")
    with serving(db_url) as bound:
        yield bound


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    return sock


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> RawResponse:
    """One response with a Content-Length (every answer of this app has one)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {buffer!r}"
        buffer += chunk
    raw_head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return RawResponse(int(status_line.split()[1]), headers, body[:length])


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (end of stream or reset) before the deadline."""
    sock.settimeout(DEADLINE)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    assert data == b"", f"unexpected bytes from the server: {data!r}"
    return True


def upload(port: int, request_head: bytes, total: int, *, chunked: bool) -> tuple[RawResponse, int]:
    """Send ``request_head`` and then try to stream ``total`` body bytes (1 MB at a time) while
    reading the answer; returns the answer and how many body bytes the server let through."""
    sock = connect(port)
    sock.sendall(request_head)
    sent = 0

    def push() -> None:
        nonlocal sent
        piece = b"x" * MB
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        try:
            while sent < total:
                sock.sendall(frame)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: it is not reading the rest

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    try:
        response = read_response(sock)
        pusher.join(timeout=DEADLINE * 4)
        assert not pusher.is_alive(), "the upload neither finished nor was cut off"
    finally:
        sock.close()
    return response, sent


# --- credentials before bodies ------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "detail"), [({}, "missing API key"),
                                                 ({"X-API-Key": "wrong"}, "invalid API key")])
def test_api_answers_401_before_a_100mb_body_is_sent(port: int, headers: dict[str, str], detail: str) -> None:
    with connect(port) as sock:
        # Only the head: the declared 100 MB never follow, so an answer proves nothing was read.
        sock.sendall(head("POST", "/api/events", {"Content-Type": "application/json",
                                                  "Content-Length": str(HUNDRED_MB), **headers}))
        response = read_response(sock)
        assert response.status == 401
        assert response.json() == {"detail": detail}
        assert response.headers["www-authenticate"] == "ApiKey"
        assert response.headers["connection"] == "close"
        assert closed_by_server(sock)


def test_api_cuts_off_a_100mb_upload_without_a_key(port: int) -> None:
    request_head = head("POST", "/api/events", {"Content-Type": "application/json",
                                                "Content-Length": str(HUNDRED_MB)})
    response, sent = upload(port, request_head, HUNDRED_MB, chunked=False)
    assert response.status == 401
    # The server closed the connection instead of reading on; only what the sockets'
    # buffers took got through.
    assert sent < HUNDRED_MB // 2


def test_console_form_without_a_session_is_refused_before_its_body(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(head("POST", "/tasks/1/complete", {"Content-Type": "application/x-www-form-urlencoded",
                                                        "Content-Length": str(HUNDRED_MB)}))
        response = read_response(sock)
        # What the page itself answers a post without a session's CSRF token: the 403 page.
        assert response.status == 403
        assert response.headers["content-type"].startswith("text/html")
        assert closed_by_server(sock)


def test_bodiless_requests_still_get_the_routes_own_answers(client: TestClient) -> None:
    # Without a body there is nothing to protect: the route decides, as before.
    assert client.post("/api/tasks/1/claim").status_code == 401
    assert client.get("/api/openapi.json").status_code == 200


# --- body caps ----------------------------------------------------------------------------------


def test_declared_oversized_body_with_a_key_is_413_before_it_is_sent(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(head("POST", "/api/events", {"Content-Type": "application/json", "X-API-Key": API_KEY,
                                                  "Content-Length": str(DEFAULT_BODY_LIMITS.api + 1)}))
        response = read_response(sock)
        assert response.status == 413
        assert response.json() == {"detail": f"request body too large: at most {DEFAULT_BODY_LIMITS.api} bytes"}
        assert response.headers["connection"] == "close"
        assert closed_by_server(sock)


def test_chunked_oversized_body_with_a_key_is_cut_off_at_the_cap(port: int) -> None:
    request_head = head("POST", "/api/events", {"Content-Type": "application/json", "X-API-Key": API_KEY,
                                                "Transfer-Encoding": "chunked"})
    response, sent = upload(port, request_head, HUNDRED_MB, chunked=True)
    assert response.status == 413
    assert response.json() == {"detail": f"request body too large: at most {DEFAULT_BODY_LIMITS.api} bytes"}
    assert response.headers["connection"] == "close"
    assert sent < HUNDRED_MB // 2


def test_bodies_within_the_cap_are_served_chunked_or_not(port: int) -> None:
    body = json.dumps(EVENT).encode()
    with connect(port) as sock:
        sock.sendall(head("POST", "/api/events", {"Content-Type": "application/json", "X-API-Key": API_KEY,
                                                  "Content-Length": str(len(body))}) + body)
        first = read_response(sock)
        assert first.status == 201, first.body
        # Read in full, so the connection stays open for the next request.
        assert first.headers.get("connection") != "close"
        framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        sock.sendall(head("POST", "/api/events", {"Content-Type": "application/json", "X-API-Key": API_KEY,
                                                  "Transfer-Encoding": "chunked"}) + framed)
        again = read_response(sock)
        assert again.status == 200 and json.loads(again.body)["created"] is False


def test_login_form_is_capped_at_16kb(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        page = http.get("/login")
        match = CSRF_RE.search(page.text)
        assert match
        fields = {"username": "ann", "csrf_token": match.group(1)}
        too_big = http.post("/login", data={**fields, "password": "p" * DEFAULT_BODY_LIMITS.forms})
        assert too_big.status_code == 413
        fine = http.post("/login", data={**fields, "password": PASSWORD}, follow_redirects=False)
        assert fine.status_code == 303


def test_task_completion_form_takes_4000_chinese_characters_of_notes(client: TestClient, seed: Seed) -> None:
    token = login(client, "ann")
    # 4,000 characters (the field's limit) of Chinese are 36,000 bytes form-encoded.
    response = client.post(f"/tasks/{seed.tasks['ann_first']}/complete", follow_redirects=False,
                           data={"csrf_token": token, "outcome": "reached", "notes": "客" * 4000})
    assert response.status_code != 413
    assert response.status_code < 500


def test_api_with_a_session_is_capped_not_refused(client: TestClient, seed: Seed) -> None:
    token = login(client, "ann")
    response = client.post(f"/api/tasks/{seed.tasks['ann_first']}/complete", headers={"X-CSRF-Token": token},
                           json={"outcome": "reached", "notes": "x" * (DEFAULT_BODY_LIMITS.api + 1)})
    assert response.status_code == 413


def test_webhooks_are_capped(client: TestClient) -> None:
    response = client.post("/hooks/twilio/status", content=b"a=" + b"x" * DEFAULT_BODY_LIMITS.hooks,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_streamed_oversized_webhook_is_413(client: TestClient) -> None:
    def pieces() -> Iterator[bytes]:
        for _ in range(DEFAULT_BODY_LIMITS.hooks // 1024 + 2):
            yield b"x" * 1024

    # A generator body goes without Content-Length: the cap is counted as the bytes arrive.
    response = client.post("/hooks/twilio/status", content=pieces(),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


# --- header and keep-alive timeouts -------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: "],
                         ids=["nothing", "unfinished-head"])
def test_connection_that_never_finishes_a_head_is_closed(port: int, sent: bytes) -> None:
    with connect(port) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)


def test_kept_alive_connection_that_starts_a_head_and_stalls_is_closed(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(head("GET", "/api/openapi.json", {}))
        assert read_response(sock).status == 200
        # One byte used to cancel uvicorn's keep-alive timer, and nothing else timed the head.
        sock.sendall(b"G")
        assert closed_by_server(sock)


def test_many_stalled_heads_are_all_closed(port: int) -> None:
    socks = [connect(port) for _ in range(50)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        assert all(closed_by_server(sock) for sock in socks)
        # And the server still serves.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/api/openapi.json").status_code == 200
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("pipelined", [False, True])
def test_header_timeout_spares_a_request_whose_head_is_complete(port: int, pipelined: bool) -> None:
    body = json.dumps(EVENT).encode()
    post = head("POST", "/api/events", {"Content-Type": "application/json", "X-API-Key": API_KEY,
                                        "Content-Length": str(len(body))})
    with connect(port) as sock:
        # Pipelined, the POST's head is parsed only once the GET is answered, when the timer restarts.
        sock.sendall((head("GET", "/api/openapi.json", {}) if pipelined else b"") + post)
        if pipelined:
            assert read_response(sock).status == 200
        # Past the (1 s) header timeout: only the body is outstanding, which that timeout does not cover.
        time.sleep(2.5)
        sock.sendall(body)
        assert read_response(sock).status == 201


def test_idle_keep_alive_is_closed(db_url: str, console_env: None, seed: Seed,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The header timeout far away, so only the keep-alive timeout can close this connection.
    monkeypatch.setenv("JOURNEYS_HEADER_TIMEOUT", "3600")
    monkeypatch.setenv("JOURNEYS_KEEPALIVE_TIMEOUT", "1")
    with serving(db_url) as bound, connect(bound) as sock:
        sock.sendall(head("GET", "/api/openapi.json", {}))
        response = read_response(sock)
        assert response.status == 200 and response.headers.get("connection") != "close"
        assert closed_by_server(sock)


def test_request_after_a_response_is_served_on_the_same_connection(port: int) -> None:
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(head("GET", "/api/openapi.json", {}))
            assert read_response(sock).status == 200
        readable, _, _ = select.select([sock], [], [], 0)
        assert not readable  # still open after three requests


# --- settings -----------------------------------------------------------------------------------


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_MAX_BODY_API", "1000")
    monkeypatch.setenv("JOURNEYS_MAX_BODY_HOOKS", "2000")
    monkeypatch.setenv("JOURNEYS_MAX_BODY_FORMS", "3000")
    monkeypatch.setenv("JOURNEYS_MAX_BODY_NOTES", "4000")
    monkeypatch.setenv("JOURNEYS_HEADER_TIMEOUT", "7")
    monkeypatch.setenv("JOURNEYS_KEEPALIVE_TIMEOUT", "3")
    limits = BodyLimits.from_env()
    assert [limits.cap_for(p) for p in ("/api/events", "/hooks/wechat", "/login", "/tasks/12/complete")] == [
        1000, 2000, 3000, 4000]
    options = server_options()
    assert options["timeout_keep_alive"] == 3
    protocol = options["http"]
    assert issubclass(protocol, HeaderTimeoutH11Protocol) and protocol.header_timeout == 7


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_unusable_settings_fall_back_to_the_defaults_with_a_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str) -> None:
    monkeypatch.setenv("JOURNEYS_MAX_BODY_API", value)
    monkeypatch.setenv("JOURNEYS_HEADER_TIMEOUT", value)
    with caplog.at_level(logging.WARNING):
        assert BodyLimits.from_env().api == DEFAULT_BODY_LIMITS.api
        assert server_options()["http"].header_timeout == HeaderTimeoutH11Protocol.header_timeout
    assert "JOURNEYS_MAX_BODY_API" in caplog.text and "JOURNEYS_HEADER_TIMEOUT" in caplog.text
