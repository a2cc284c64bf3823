"""A route that fails unexpectedly answers a proper 500 (page or JSON) with the security headers, and the
keep-alive connection it came on goes on serving: real uvicorn on loopback, a route whose SQL fails."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI, Request
from sqlalchemy import text

from console.app import create_app
from console.deps import db_url as app_db_url
from store.db import session_scope
from tests.console.conftest import API_KEY, Seed, serving

# What a failing query's exception carries; none of it may reach the caller.
SECRET_SQL = "SELECT secret_column FROM no_such_table_xyz"
EXPECTED_HEADERS = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def _failing(request: Request) -> None:
    with session_scope(app_db_url(request)) as session:
        session.exec(text(SECRET_SQL))  # type: ignore[call-overload]


def _app_with_failing_routes(db_url: str) -> FastAPI:
    app = create_app(db_url)
    app.router.add_api_route("/boom", _failing, methods=["GET"])
    app.router.add_api_route("/api/boom", _failing, methods=["GET"])
    return app


@pytest.fixture
def base(db_url: str, console_env: None, seed: Seed) -> Iterator[str]:
    with serving(_app_with_failing_routes(db_url)) as url:
        yield url


def _get(conn: http.client.HTTPConnection, path: str, **headers: str) -> tuple[http.client.HTTPResponse, str]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response, response.read().decode()


def _assert_clean_500(response: http.client.HTTPResponse, body: str) -> None:
    assert response.status == 500
    for name, part in EXPECTED_HEADERS.items():
        assert part in (response.getheader(name) or ""), name
    for leak in ("no_such_table", "secret_column", "Traceback", "sqlalchemy", "OperationalError"):
        assert leak not in body


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_failing_page_answers_the_error_page_and_keeps_the_connection(base: str, lang: str) -> None:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        response, body = _get(conn, "/boom", **{"Accept-Language": lang})
        _assert_clean_500(response, body)
        assert response.getheader("content-type", "").startswith("text/html")
        assert ("Something went wrong" if lang == "en" else "出错了") in body
        # The same connection answers the next request: the server did not drop it.
        again, page = _get(conn, "/login", **{"Accept-Language": lang})
        assert again.status == 200 and "csrf_token" in page
    finally:
        conn.close()


def test_a_failing_api_route_answers_json_and_keeps_the_connection(base: str) -> None:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        response, body = _get(conn, "/api/boom", **{"X-API-Key": API_KEY})
        _assert_clean_500(response, body)
        assert json.loads(body) == {"detail": "internal_error"}
        again, _ = _get(conn, "/api/tasks", **{"X-API-Key": API_KEY})
        assert again.status == 200
    finally:
        conn.close()
