"""Console hardening: login lockout, security headers and cookies, session expiry, and every route's rights.

Time is moved with an injected clock, never waited for. The rights table below is SPEC §9
written down as data; a route added to the app without a row in it fails
``test_every_route_has_a_row_in_the_rights_table``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlmodel import select
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from console.app import create_app
from store.db import session_scope
from store.models import AgentTask, AppUser, AuditLog
from tests.console.conftest import API_KEY, PASSWORD, FakeClock, Seed, csrf_of, login

COOKIE = "journeys_session"


@pytest.fixture
def make_client(db_url: str, console_env: None, seed: Seed, clock: FakeClock) -> Iterator[Callable[..., TestClient]]:
    """Clients of one app (built on first use, after the test has set its environment) running on ``clock``."""
    built: list[FastAPI] = []
    clients: list[TestClient] = []

    def make(address: str = "testclient", base_url: str = "http://testserver") -> TestClient:
        if not built:
            built.append(create_app(db_url, clock=clock))
        c = TestClient(built[0], base_url=base_url, client=(address, 50000))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def post_login(c: TestClient, username: str, password: str, **headers: str) -> Any:
    # Anonymous pages follow the browser's language (default zh-CN); English unless the test asks.
    headers = {"Accept-Language": "en", **headers}
    token = csrf_of(c.get("/login", headers=headers).text)
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  headers=headers, follow_redirects=False)


def user_row(db_url: str, name: str) -> AppUser:
    with session_scope(db_url) as s:
        return s.exec(select(AppUser).where(AppUser.username == name)).one()


def audit_rows(db_url: str, action: str) -> list[AuditLog]:
    with session_scope(db_url) as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action)).all())


# --- login lockout ------------------------------------------------------------------------------


def test_five_failures_lock_the_account_for_15_minutes_with_a_message_and_an_audit_row(
        make_client: Callable[..., TestClient], clock: FakeClock, db_url: str) -> None:
    c = make_client()
    for _ in range(4):
        response = post_login(c, "bob", "wrong-password")
        assert response.status_code == 401 and "Wrong username or password." in response.text
    response = post_login(c, "bob", "wrong-password")
    assert response.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes." in response.text
    assert response.headers["retry-after"] == "900"
    [row] = audit_rows(db_url, "login_lockout")
    assert row.actor == "bob" and row.target_id == str(user_row(db_url, "bob").id) and row.detail["failures"] == 5
    # Even the right password is refused while locked, and it is not checked, so it is not a hint either.
    clock.advance(minutes=14)
    response = post_login(c, "bob", PASSWORD)
    assert response.status_code == 429 and "Try again in 1 minutes." in response.text
    assert c.get("/inbox", follow_redirects=False).status_code == 303
    clock.advance(minutes=1, seconds=1)
    assert post_login(c, "bob", PASSWORD).status_code == 303
    bob = user_row(db_url, "bob")
    assert bob.failed_logins == 0 and bob.locked_until is None
    assert c.get("/inbox").status_code == 200


def test_the_lockout_message_follows_the_browsers_language(make_client: Callable[..., TestClient]) -> None:
    c = make_client()
    for _ in range(5):
        response = post_login(c, "bob", "wrong-password", **{"Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.status_code == 429 and "登录失败次数过多，请 15 分钟后再试。" in response.text


def test_a_successful_login_resets_the_failure_count(make_client: Callable[..., TestClient], db_url: str) -> None:
    c = make_client()
    for _ in range(4):
        assert post_login(c, "ann", "wrong-password").status_code == 401
    assert user_row(db_url, "ann").failed_logins == 4
    assert post_login(c, "ann", PASSWORD).status_code == 303
    assert user_row(db_url, "ann").failed_logins == 0
    c.post("/logout", data={"csrf_token": csrf_of(c.get("/login").text)})
    for _ in range(4):
        assert post_login(c, "ann", "wrong-password").status_code == 401  # four again, not nine: not locked
    assert post_login(c, "ann", PASSWORD).status_code == 303


def test_guesses_sent_in_parallel_each_count(make_client: Callable[..., TestClient], db_url: str) -> None:
    clients = [make_client() for _ in range(5)]
    tokens = [csrf_of(c.get("/login").text) for c in clients]

    def guess(i: int) -> int:
        return clients[i].post("/login", data={"username": "bob", "password": f"guess-{i}", "csrf_token": tokens[i]},
                               follow_redirects=False).status_code

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = sorted(pool.map(guess, range(5)))
    assert statuses[-1] == 429 and set(statuses) <= {401, 429}
    assert user_row(db_url, "bob").locked_until is not None


def test_unknown_names_lock_like_real_ones(make_client: Callable[..., TestClient], db_url: str) -> None:
    # Otherwise the lockout message would tell an attacker which user names exist.
    c = make_client()
    answers = [post_login(c, "nobody", "whatever-pass") for _ in range(6)]
    assert [a.status_code for a in answers] == [401, 401, 401, 401, 429, 429]
    assert "Too many failed logins." in answers[-1].text
    [row] = audit_rows(db_url, "login_lockout")
    assert row.target_id == "nobody" and row.detail["known"] is False


def test_one_address_trying_many_names_is_blocked(make_client: Callable[..., TestClient], clock: FakeClock,
                                                  db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_LOGIN_IP_MAX_FAILURES", "3")
    attacker = make_client("203.0.113.9")
    colleague = make_client("198.51.100.7")
    assert post_login(attacker, "ann", "guess-one").status_code == 401
    assert post_login(attacker, "bob", "guess-two").status_code == 401
    response = post_login(attacker, "guess-name", "guess-three")
    assert response.status_code == 429 and "Try again in 15 minutes." in response.text
    [row] = audit_rows(db_url, "login_ip_lockout")
    assert row.target_type == "address" and row.target_id == "203.0.113.9" and row.detail["failures"] == 3
    # Refused before the password is looked at: the right password does not get in, nor count against ann.
    assert post_login(attacker, "ann", PASSWORD).status_code == 429
    assert user_row(db_url, "ann").failed_logins == 1
    # Other addresses are not affected, and the block ends.
    assert post_login(colleague, "ann", PASSWORD).status_code == 303
    clock.advance(minutes=15, seconds=1)
    assert post_login(attacker, "ann", PASSWORD).status_code == 303


# --- session expiry and logout ------------------------------------------------------------------


def test_an_idle_session_expires_and_the_login_page_says_so(make_client: Callable[..., TestClient],
                                                            clock: FakeClock) -> None:
    c = make_client()
    login(c, "ann")
    clock.advance(minutes=29)
    assert c.get("/inbox").status_code == 200  # activity restarts the idle timer ...
    clock.advance(minutes=29)
    assert c.get("/inbox").status_code == 200
    clock.advance(minutes=30, seconds=1)  # ... and 30 quiet minutes end the session
    response = c.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/inbox"
    page = c.get(response.headers["location"], headers={"Accept-Language": "en"})
    assert "Your session has ended. Please log in again." in page.text
    # Gone, not merely hidden: going back to the earlier time does not revive it.
    clock.advance(minutes=-31)
    assert c.get("/inbox", follow_redirects=False).status_code == 303


def test_a_session_ends_after_12_hours_however_busy(make_client: Callable[..., TestClient],
                                                    clock: FakeClock) -> None:
    c = make_client()
    login(c, "ann")
    for _ in range(12 * 3):
        clock.advance(minutes=20)
        assert c.get("/", follow_redirects=False).headers["location"] == "/inbox"
    clock.advance(seconds=1)
    response = c.get("/", follow_redirects=False)
    assert response.headers["location"] == "/login"
    # The API side of the same session answers 401, not a redirect.
    assert c.get("/api/tasks").status_code == 401


def test_session_limits_are_configurable(make_client: Callable[..., TestClient], clock: FakeClock,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_SESSION_IDLE_MINUTES", "5")
    c = make_client()
    login(c, "ann")
    clock.advance(minutes=4)
    assert c.get("/inbox", follow_redirects=False).status_code == 200
    clock.advance(minutes=5, seconds=1)
    assert c.get("/inbox", follow_redirects=False).status_code == 303


def test_logout_clears_the_session_and_a_copy_of_the_old_cookie_stops_working(
        make_client: Callable[..., TestClient]) -> None:
    c = make_client()
    token = login(c, "ann")
    stolen = c.cookies.get(COOKIE)
    assert stolen
    response = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert f"{COOKIE}=null" in response.headers["set-cookie"] and "1970" in response.headers["set-cookie"]
    assert c.get("/inbox", follow_redirects=False).status_code == 303
    # The cookie is the whole session, so someone who copied it must be stopped by the server.
    other = make_client()
    other.cookies.set(COOKIE, stolen)
    response = other.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    login(c, "ann")  # logging in again works
    assert c.get("/inbox").status_code == 200


# --- headers and cookies ------------------------------------------------------------------------

BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def assert_hardened(response: Any) -> None:
    for name, value in BASE_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "camera=()" in response.headers["permissions-policy"]


def test_every_kind_of_response_carries_the_security_headers(make_client: Callable[..., TestClient],
                                                             seed: Seed) -> None:
    c = make_client()
    login(c, "ann")
    responses = {
        "page": c.get(f"/tasks/{seed.tasks['ann_first']}"),
        "redirect": c.get("/", follow_redirects=False),
        "error page": c.get(f"/tasks/{seed.tasks['bob']}"),
        "api": c.get("/api/customers/C1", headers={"X-API-Key": API_KEY}),
        "api error": c.get("/api/customers/C1"),
        "not found": c.get("/no/such/page"),
        "static": c.get("/static/console.js"),
        "hook": c.get("/hooks/unsubscribe/not-a-token"),
    }
    assert [r.status_code for r in responses.values()] == [200, 303, 404, 200, 401, 404, 200, 404]
    for response in responses.values():
        assert_hardened(response)
        assert "strict-transport-security" not in response.headers  # plain http: no HSTS
    console_csp = responses["page"].headers["content-security-policy"]
    # Only the app itself: no inline script or style, no other origin.
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "form-action 'self'",
                      "base-uri 'none'", "object-src 'none'"):
        assert directive in console_csp
    assert "unsafe-inline" not in console_csp and "http" not in console_csp
    assert "default-src 'none'" in responses["hook"].headers["content-security-policy"]
    # Customer data (pages, API answers, error pages) is never cached; the shipped JS may be.
    for name in ("page", "redirect", "error page", "api", "api error"):
        assert responses[name].headers["cache-control"] == "no-store", name
    assert "no-store" not in responses["static"].headers.get("cache-control", "")


def cookie_flags(response: Any) -> set[str]:
    [header] = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE)]
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]} | {
        part.strip().lower() for part in header.split(";") if part.strip().lower().startswith("samesite")}


def test_session_cookie_is_httponly_lax_and_not_secure_over_plain_http(
        make_client: Callable[..., TestClient]) -> None:
    flags = cookie_flags(post_login(make_client(), "ann", PASSWORD))
    assert {"httponly", "samesite=lax"} <= flags and "secure" not in flags


def test_over_https_the_cookie_is_secure_and_hsts_is_sent(make_client: Callable[..., TestClient]) -> None:
    c = make_client(base_url="https://testserver")
    response = post_login(c, "ann", PASSWORD)
    assert {"httponly", "samesite=lax", "secure"} <= cookie_flags(response)
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert c.get("/inbox").status_code == 200  # the Secure cookie comes back over https
    assert_hardened(c.get("/inbox"))


def test_cookie_secure_can_be_forced_for_tls_ending_at_a_proxy(make_client: Callable[..., TestClient],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_COOKIE_SECURE", "1")
    assert "secure" in cookie_flags(post_login(make_client(), "ann", PASSWORD))


# --- every route, every role (SPEC §9) ----------------------------------------------------------
#
# agent: own tasks and the claimable queue, masked PII, unmasked only on a task they claimed;
# supervisor: the team's tasks (unmasked too) and reassignment; ops: journeys and reports;
# admin: users and the audit log (and, like ops, journeys and reports). A task the user may
# not see answers 404, like one that does not exist (tests/console/test_tasks.py).
# API keys are for systems: events and customers only with a key; tasks with a key or a session.
# Page routes ignore API keys: without a session they send the browser to the login page.

PRINCIPALS = ("anonymous", "agent", "supervisor", "ops", "admin", "api_key", "bad_api_key")
SESSION_USERS = {"agent": "ann", "supervisor": "sue", "ops": "olga", "admin": "adam"}


def row(*, anonymous: int, agent: int, supervisor: int, ops: int, admin: int, api_key: int, bad_api_key: int
        ) -> dict[str, int]:
    return {"anonymous": anonymous, "agent": agent, "supervisor": supervisor, "ops": ops, "admin": admin,
            "api_key": api_key, "bad_api_key": bad_api_key}


def page(*, agent: int, supervisor: int, ops: int, admin: int) -> dict[str, int]:
    """A console page: no session (API key or not) → 303 to the login page."""
    return row(anonymous=303, agent=agent, supervisor=supervisor, ops=ops, admin=admin, api_key=303, bad_api_key=303)


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PRINCIPALS, status)


KEY_ONLY = row(anonymous=401, agent=401, supervisor=401, ops=401, admin=401, api_key=200, bad_api_key=401)
# The page rows that several routes share, named by who may use them.
TASK_PAGE = page(agent=200, supervisor=200, ops=403, admin=403)  # agents and supervisors see tasks
OWN_TASK_ACTION = page(agent=303, supervisor=403, ops=403, admin=403)  # only the agent works a task
OPS_PAGE = page(agent=403, supervisor=403, ops=200, admin=200)  # journeys and tools: ops and admin
ADMIN_ACTION = page(agent=403, supervisor=403, ops=403, admin=303)  # user changes: admin only
ADMIN_PAGE = page(agent=403, supervisor=403, ops=403, admin=200)  # users and the audit log: admin only
OPS_ACTION = page(agent=403, supervisor=403, ops=303, admin=303)  # submissions, the seed list: ops and admin
SUPERVISOR_ACTION = page(agent=403, supervisor=303, ops=403, admin=403)  # handing tasks out: supervisors only


def each(rights: dict[str, int], *routes: str) -> dict[tuple[str, str], dict[str, int]]:
    """One row for several routes with the same rights, each written "METHOD /path"."""
    return {(method, path): rights for method, path in (route.split(" ", 1) for route in routes)}


# (method, route path) → expected status per principal.
RIGHTS: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/"): everyone(303),  # to the login page or the role's start page
    **each(everyone(200), "GET /login",
           # The schema documents the API's shape, not its data; integrators read it before they have a key.
           "GET /api/openapi.json", "HEAD /api/openapi.json"),
    # /me/locale is the user's own setting; without a session it goes to the login page.
    **each(everyone(303), "POST /login", "POST /logout", "POST /me/locale"),
    **each(TASK_PAGE, "GET /inbox", "GET /tasks/{task_id}"),
    # Unmasking takes more than seeing: ann's task is only assigned to her, not claimed (a call in
    # progress), so she is refused; so is her supervisor, who oversees the task but is not working it.
    ("POST", "/tasks/{task_id}/reveal"): page(agent=403, supervisor=403, ops=403, admin=403),
    ("POST", "/tasks/{task_id}/claim"): OWN_TASK_ACTION,
    # Her task, not claimed yet: the page again with what she typed, saying to claim it first (409 claim_first).
    ("POST", "/tasks/{task_id}/complete"): {**OWN_TASK_ACTION, "agent": 409},
    **each(SUPERVISOR_ACTION, "POST /tasks/{task_id}/reassign", "POST /supervisor/assign"),
    ("GET", "/supervisor"): page(agent=403, supervisor=200, ops=403, admin=403),
    **each(OPS_PAGE, "GET /ops/journeys", "GET /ops/journeys/{journey_id}", "GET /ops/explain", "GET /ops/simulate",
           "GET /ops/report", "GET /ops/review", "GET /ops/test-send"),
    ("GET", "/ops/tools/{tool}"): page(agent=403, supervisor=403, ops=301, admin=301),  # moved: /ops/<tool>
    # Review (console.review): ops see and submit changes; approving, rejecting and rolling back take the
    # approve right (compliance, admin). The seed stores no journey version: a version page is a 404,
    # and an action on one comes back to its page with a message.
    ("GET", "/ops/review/{version_id}"): page(agent=403, supervisor=403, ops=404, admin=404),
    **each(OPS_ACTION, "POST /ops/review/submit", "POST /ops/test-send/recipients",
           "POST /ops/test-send/recipients/{index}/remove"),
    **each(ADMIN_ACTION, "POST /ops/review/{version_id}/approve", "POST /ops/review/{version_id}/reject",
           "POST /ops/review/{version_id}/rollback", "POST /admin/users", "POST /admin/users/{user_id}/toggle",
           "POST /admin/users/{user_id}/skills", "POST /admin/users/{user_id}/password"),
    # Test send: the seed's seed list is empty, so a send is refused with the page and its message (422).
    ("POST", "/ops/test-send"): page(agent=403, supervisor=403, ops=422, admin=422),
    **each(ADMIN_PAGE, "GET /admin/users", "GET /admin/audit"),
    **each(KEY_ONLY, "GET /api/customers/{external_id}", "PUT /api/customers/{external_id}",
           "GET /api/policies/{external_id}", "PUT /api/policies/{external_id}"),
    ("POST", "/api/events"): {**KEY_ONLY, "api_key": 201},
    ("GET", "/api/claims/{external_id}"): {**KEY_ONLY, "api_key": 404},  # the seed has no claim; the key is let in
    ("PUT", "/api/claims/{external_id}"): {**KEY_ONLY, "api_key": 201},  # created
    ("GET", "/api/tasks"): row(anonymous=401, agent=200, supervisor=200, ops=403, admin=403, api_key=200,
                               bad_api_key=401),
    # A key alone is a system, not an agent: it must name one (X-Acting-User) to work a task → 422.
    ("POST", "/api/tasks/{task_id}/claim"): row(anonymous=401, agent=200, supervisor=403, ops=403, admin=403,
                                                api_key=422, bad_api_key=401),
    # ann's task is assigned to her but not claimed: an outcome only once it is (409 claim_first), as on the page.
    ("POST", "/api/tasks/{task_id}/complete"): row(anonymous=401, agent=409, supervisor=403, ops=403, admin=403,
                                                   api_key=422, bad_api_key=401),
}


@dataclass(frozen=True)
class Call:
    """How to call a route so that a principal with the right gets its success status."""

    params: Callable[[Seed], dict[str, Any]] = lambda _seed: {}
    form: Callable[[Seed], dict[str, str]] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def ann_first(seed: Seed) -> dict[str, Any]:
    return {"task_id": seed.tasks["ann_first"]}  # open, assigned to agent ann of supervisor sue's team


CALLS: dict[tuple[str, str], Call] = {
    ("POST", "/login"): Call(form=lambda _s: {"username": "ann", "password": PASSWORD}),
    ("POST", "/me/locale"): Call(form=lambda _s: {"locale": "en", "back": "/"}),
    ("GET", "/tasks/{task_id}"): Call(ann_first),
    ("POST", "/tasks/{task_id}/reveal"): Call(ann_first, form=lambda _s: {}),
    ("POST", "/tasks/{task_id}/claim"): Call(ann_first, form=lambda _s: {}),
    ("POST", "/tasks/{task_id}/complete"): Call(ann_first, form=lambda _s: {"outcome": "reached", "confirmed": "1"}),
    ("POST", "/tasks/{task_id}/reassign"): Call(
        ann_first, form=lambda s: {"to_user_id": str(s.users["bob"]), "back": "/supervisor"}),
    ("GET", "/ops/tools/{tool}"): Call(lambda _s: {"tool": "report"}),
    ("POST", "/supervisor/assign"): Call(form=lambda s: {"task_ids": str(s.tasks["free"]),
                                                         "to_user_id": str(s.users["ann"])}),
    ("GET", "/ops/journeys/{journey_id}"): Call(lambda _s: {"journey_id": "silver-weekly-push"}),
    ("GET", "/ops/review/{version_id}"): Call(lambda _s: {"version_id": 1}),
    ("POST", "/ops/review/{version_id}/approve"): Call(lambda _s: {"version_id": 1}, form=lambda _s: {"comment": "ok"}),
    ("POST", "/ops/review/{version_id}/reject"): Call(lambda _s: {"version_id": 1}, form=lambda _s: {"comment": "no"}),
    ("POST", "/ops/review/{version_id}/rollback"): Call(lambda _s: {"version_id": 1},
                                                        form=lambda _s: {"comment": "back"}),
    ("POST", "/ops/test-send"): Call(form=lambda _s: {"template": "renewal_reminder", "channel": "sms",
                                                      "locale": "zh-CN"}),
    ("POST", "/ops/test-send/recipients"): Call(form=lambda _s: {"name": "QA", "email": "qa@example.com"}),
    ("POST", "/ops/test-send/recipients/{index}/remove"): Call(lambda _s: {"index": 0}),
    ("POST", "/admin/users"): Call(
        form=lambda _s: {"username": "walker", "password": "long-enough-1", "role": "agent", "team": "a"}),
    ("POST", "/admin/users/{user_id}/toggle"): Call(lambda s: {"user_id": s.users["bob"]},
                                                    form=lambda _s: {"what": "on_shift"}),
    ("POST", "/admin/users/{user_id}/skills"): Call(lambda s: {"user_id": s.users["bob"]},
                                                    form=lambda _s: {"skill": "lang:en"}),
    ("POST", "/admin/users/{user_id}/password"): Call(lambda s: {"user_id": s.users["bob"]},
                                                      form=lambda _s: {"password": "another-horse-2"}),
    ("POST", "/api/events"): Call(json={"event_id": "walk-1", "type": "survey.answered", "customer_id": "C1",
                                        "data": {"survey": "nps", "nps": 9}}),
    ("GET", "/api/customers/{external_id}"): Call(lambda _s: {"external_id": "C1"}),
    ("PUT", "/api/customers/{external_id}"): Call(lambda _s: {"external_id": "C1"}, json={"branch": "北京分公司"}),
    ("GET", "/api/policies/{external_id}"): Call(lambda _s: {"external_id": "P1"}),
    ("PUT", "/api/policies/{external_id}"): Call(lambda _s: {"external_id": "P1"}, json={"status": "lapsed"}),
    ("GET", "/api/claims/{external_id}"): Call(lambda _s: {"external_id": "L1"}),
    ("PUT", "/api/claims/{external_id}"): Call(lambda _s: {"external_id": "L1"}, json={
        "customer_external_id": "C1", "policy_external_id": "P1", "filed_at": "2026-05-01", "amount": 900}),
    ("POST", "/api/tasks/{task_id}/claim"): Call(ann_first),
    ("POST", "/api/tasks/{task_id}/complete"): Call(ann_first, json={"outcome": "reached"}),
}

# Not walked: the static files, and the channel webhooks, which authenticate providers by signature
# (tests/loop/test_receipts.py and the webhook fuzzing cover them).
NOT_WALKED_PREFIXES = ("/static", "/hooks/")


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    # FastAPI 0.15x keeps included routers as one entry each in app.routes; its iter_route_contexts
    # yields the routes inside them with their full paths (older versions list them flat).
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    entries: list[Any] = list(iterate(app.routes)) if iterate is not None else list(app.routes)
    found: set[tuple[str, str]] = set()
    for entry in entries:
        route = getattr(entry, "original_route", entry)
        path = entry.path
        assert isinstance(path, str), f"a route the walk cannot read: {entry!r}"
        if path.startswith(NOT_WALKED_PREFIXES):
            continue
        if isinstance(route, Mount):
            pytest.fail(f"unexpected mount {path}: add it to the rights table or to NOT_WALKED_PREFIXES")
        assert isinstance(route, (APIRoute, Route)), route
        assert entry.methods, f"{path}: a route without methods"
        found |= {(method, path) for method in entry.methods}
    return found


def test_every_route_has_a_row_in_the_rights_table(app: FastAPI) -> None:
    routes = app_routes(app)
    missing = sorted(routes - RIGHTS.keys())
    assert not missing, f"routes without a row in RIGHTS (decide who may call them): {missing}"
    stale = sorted(RIGHTS.keys() - routes)
    assert not stale, f"rows in RIGHTS for routes the app no longer has: {stale}"
    assert all(set(expected) == set(PRINCIPALS) for expected in RIGHTS.values())
    assert set(CALLS) <= set(RIGHTS)


# A cookie from logging in once per role, reused in later cases: every case gets a fresh copy of the
# same seeded database and the same session key, so the cookie is valid there, as it is for every
# worker of a real deployment. It saves an argon2 verification per case.
_sessions: dict[str, tuple[str, str]] = {}


def sign_in(c: TestClient, principal: str) -> str:
    """Authenticate ``c`` as ``principal``; returns the CSRF token its forms and scripts must send."""
    username = SESSION_USERS.get(principal)
    if username is None:
        if principal == "api_key":
            c.headers["X-API-Key"] = API_KEY
        elif principal == "bad_api_key":
            c.headers["X-API-Key"] = "not-" + API_KEY
        # A valid token even without a login: the walk tests rights, not CSRF (test_auth does that).
        return csrf_of(c.get("/login").text)
    if username not in _sessions:
        token = login(c, username)
        cookie = c.cookies.get(COOKIE)
        assert cookie
        _sessions[username] = (cookie, token)
        return token
    cookie, token = _sessions[username]
    c.cookies.set(COOKIE, cookie)
    return token


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize(("method", "path"), sorted(RIGHTS))
def test_route_rights(app: FastAPI, seed: Seed, method: str, path: str, principal: str) -> None:
    expected = RIGHTS[(method, path)][principal]
    call = CALLS.get((method, path), Call())
    with TestClient(app, base_url="http://testserver") as c:
        token = sign_in(c, principal)
        url = path.format(**call.params(seed))
        kwargs: dict[str, Any] = {"headers": {**call.headers}, "follow_redirects": False}
        if method not in ("GET", "HEAD"):
            if call.json is not None or path.startswith("/api/"):
                kwargs["json"] = call.json
                kwargs["headers"]["X-CSRF-Token"] = token
            else:
                kwargs["data"] = {**(call.form(seed) if call.form else {}), "csrf_token": token}
        response = c.request(method, url, **kwargs)
    assert response.status_code == expected, (method, url, principal, response.text[:300])
    if response.status_code == 303:
        # Without a session every refusal is a trip to the login page; with one, only logging out is.
        signed_in = principal in SESSION_USERS and path != "/logout"
        goes_to_login = response.headers["location"].startswith("/login")
        assert goes_to_login == (not signed_in and path != "/login"), response.headers["location"]


def test_a_refused_role_changes_nothing(app: FastAPI, seed: Seed, db_url: str) -> None:
    # A 403 must not come after the work is done: ops completing and supervisor claiming leave the task alone.
    with TestClient(app) as c:
        token = sign_in(c, "ops")
        assert c.post(f"/tasks/{seed.tasks['ann_first']}/complete",
                      data={"outcome": "reached", "csrf_token": token}).status_code == 403
    with TestClient(app) as c:
        token = sign_in(c, "supervisor")
        assert c.post(f"/api/tasks/{seed.tasks['ann_first']}/claim",
                      headers={"X-CSRF-Token": token}).status_code == 403
    with session_scope(db_url) as s:
        task = s.get(AgentTask, seed.tasks["ann_first"])
        assert task is not None and task.status == "open" and task.assignee_id == seed.users["ann"]


def test_a_route_added_without_a_row_is_caught(app: FastAPI) -> None:
    @app.get("/ops/new-report")
    def new_report() -> dict[str, str]:  # pragma: no cover - never called
        return {}

    assert ("GET", "/ops/new-report") in app_routes(app) - RIGHTS.keys()


# --- the CSP in a real browser ------------------------------------------------------------------

# Records what the browser blocks; added through the DevTools protocol, so the CSP does not apply to it.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.mark.browser
def test_login_and_completing_a_task_work_in_chromium_under_the_csp(browser: Any, server: str, seed: Seed,
                                                                    db_url: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    context = browser.new_context(base_url=server)
    try:
        page = context.new_page()
        messages: list[str] = []
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda e: messages.append(f"page error: {e}"))
        page.on("response", lambda r: messages.append(f"{r.status} {r.url}") if r.status == 404 else None)
        page.add_init_script(RECORD_VIOLATIONS)
        blocked: list[str] = []

        def check_page() -> None:
            blocked.extend(page.evaluate("window.__cspViolations"))

        response = page.goto("/login")
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        check_page()
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/inbox")
        check_page()
        # The stylesheet applies ...
        assert page.eval_on_selector("header.top", "e => getComputedStyle(e).display") == "flex"
        # ... and the script runs: a countdown whose due time passes is turned to "overdue" by console.js.
        page.eval_on_selector("[data-testid=my-tasks] .countdown[data-due]",
                              "e => e.setAttribute('data-due', '2000-01-01T00:00:00Z')")
        expect(page.locator("[data-testid=my-tasks] .countdown[data-due]").first).to_contain_text("overdue")

        free = seed.tasks["free"]
        page.get_by_test_id(f"claim-{free}").click()
        page.wait_for_url(f"**/tasks/{free}")
        check_page()
        page.get_by_test_id("reveal").click()
        expect(page.get_by_test_id("revealed-note")).to_be_visible()
        check_page()
        page.fill("textarea[name=notes]", "Reached under the CSP")
        page.get_by_test_id("outcome-reached").click()
        expect(page.get_by_test_id("confirm")).to_be_visible()
        check_page()
        page.get_by_test_id("confirm-outcome").click()
        page.wait_for_url(f"**/tasks/{seed.tasks['ann_first']}")
        expect(page.get_by_role("status").first).to_have_text("Outcome recorded.")
        check_page()
        page.get_by_test_id("logout").click()
        page.wait_for_url("**/login")
        check_page()
    finally:
        context.close()
    with session_scope(db_url) as s:
        done = s.get(AgentTask, seed.tasks["free"])
        assert done is not None and done.status == "done" and done.notes == "Reached under the CSP"
    assert blocked == []
    assert messages == []
