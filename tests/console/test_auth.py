"""Login with argon2 passwords, signed sessions, CSRF on every form, rights per role."""

from __future__ import annotations

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from console.auth import MAX_FAILED_LOGINS, hash_password, set_password, verify_password
from store.db import session_scope
from store.models import AppUser, AuditLog
from tests.console.conftest import PASSWORD, Seed, csrf_of, login


def test_passwords_are_argon2_hashes() -> None:
    hashed = hash_password("s3cret-pass")
    assert hashed.startswith("$argon2")
    assert verify_password(hashed, "s3cret-pass")
    assert not verify_password(hashed, "wrong")
    assert not verify_password("not a hash", "s3cret-pass")


def test_login_sets_a_signed_session_and_lands_on_the_role_page(client: TestClient, db_url: str) -> None:
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    cookie = response.cookies.get("journeys_session") or client.cookies.get("journeys_session")
    assert cookie and "ann" not in cookie  # signed, not a readable user name
    assert client.get("/inbox").status_code == 200
    with session_scope(db_url) as s:
        assert s.exec(select(AuditLog).where(AuditLog.action == "login", AuditLog.actor == "ann")).first()


def test_a_tampered_session_cookie_is_not_accepted(client: TestClient) -> None:
    login(client, "ann")
    value = client.cookies.get("journeys_session")
    assert value
    client.cookies.set("journeys_session", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"))
    response = client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_wrong_password_is_refused_and_repeated_failures_lock_the_account(client: TestClient, db_url: str) -> None:
    token = csrf_of(client.get("/login").text)
    for _ in range(MAX_FAILED_LOGINS - 1):
        response = client.post("/login", data={"username": "bob", "password": "nope", "csrf_token": token})
        assert response.status_code == 401
    # The last allowed failure locks the account (details in test_security.py).
    response = client.post("/login", data={"username": "bob", "password": "nope", "csrf_token": token})
    assert response.status_code == 429
    # Locked now: even the right password is refused for a while.
    response = client.post("/login", data={"username": "bob", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 429
    with session_scope(db_url) as s:
        bob = s.exec(select(AppUser).where(AppUser.username == "bob")).one()
        assert bob.locked_until is not None


def test_pages_need_a_login(client: TestClient) -> None:
    response = client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/inbox"


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_form_posts_without_the_right_csrf_token_are_refused(client: TestClient, seed: Seed, token: str | None,
                                                              db_url: str) -> None:
    login(client, "ann")
    data = {"outcome": "reached"}
    if token is not None:
        data["csrf_token"] = token
    response = client.post(f"/tasks/{seed.tasks['ann_first']}/complete", data=data, follow_redirects=False)
    assert response.status_code == 403
    response = client.post(f"/tasks/{seed.tasks['free']}/claim", data=data, follow_redirects=False)
    assert response.status_code == 403
    from store.models import AgentTask

    with session_scope(db_url) as s:
        assert s.get(AgentTask, seed.tasks["ann_first"]).status == "open"  # type: ignore[union-attr]
        assert s.get(AgentTask, seed.tasks["free"]).assignee_id is None  # type: ignore[union-attr]


def test_login_form_itself_needs_the_token(client: TestClient) -> None:
    response = client.post("/login", data={"username": "ann", "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 403


def test_the_token_from_another_session_does_not_work(app: object, client: TestClient, seed: Seed) -> None:
    other = TestClient(app)  # type: ignore[arg-type]
    foreign = login(other, "bob")
    login(client, "ann")
    response = client.post(f"/tasks/{seed.tasks['free']}/claim", data={"csrf_token": foreign},
                           follow_redirects=False)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("ann", "/inbox", 200), ("ann", "/supervisor", 403), ("ann", "/ops/journeys", 403),
        ("ann", "/admin/users", 403), ("sue", "/supervisor", 200), ("sue", "/admin/users", 403),
        ("olga", "/ops/journeys", 200), ("olga", "/inbox", 403), ("olga", "/admin/users", 403),
        ("adam", "/admin/users", 200), ("adam", "/inbox", 403),
    ],
)
def test_rights_per_role(client: TestClient, user: str, path: str, status: int) -> None:
    login(client, user)
    assert client.get(path).status_code == status


def test_admin_adds_a_user_who_can_log_in(client: TestClient, db_url: str) -> None:
    token = login(client, "adam")
    response = client.post("/admin/users", data={"csrf_token": token, "username": "dan", "password": "longenough1",
                                                 "role": "agent", "team": "a", "locale": "en"})
    assert response.status_code == 200 and "dan" in response.text
    with session_scope(db_url) as s:
        dan = s.exec(select(AppUser).where(AppUser.username == "dan")).one()
        assert dan.password_hash.startswith("$argon2") and dan.role == "agent"
    client.cookies.clear()
    login(client, "dan", "longenough1")


@pytest.mark.parametrize("password", [" " * 10, "\t" * 9, "a" * 12, "  xxxxxxxx  "])
def test_a_blank_or_one_key_password_is_refused_by_the_form_and_by_set_password(
        client: TestClient, db_url: str, seed: Seed, password: str) -> None:
    token = login(client, "adam")
    response = client.post("/admin/users", data={"csrf_token": token, "username": "dan", "password": password,
                                                 "role": "agent", "team": "a", "locale": "en"})
    assert response.status_code == 200 and "not blank, not one character repeated" in response.text
    with session_scope(db_url) as s:
        assert s.exec(select(AppUser).where(AppUser.username == "dan")).first() is None
        with pytest.raises(ValueError, match="blank or one character repeated"):
            set_password(s, "ann", password)  # what `journeys users passwd` calls
    client.cookies.clear()
    login(client, "ann")  # her password unchanged


def test_deactivated_user_loses_the_session_at_once(client: TestClient, app: object, seed: Seed) -> None:
    login(client, "ann")
    admin = TestClient(app)  # type: ignore[arg-type]
    token = login(admin, "adam")
    admin.post(f"/admin/users/{seed.users['ann']}/toggle", data={"csrf_token": token, "what": "active"})
    response = client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")



def test_a_session_held_when_the_admin_deactivated_the_user_stays_dead_after_reactivation(
        client: TestClient, app: object, seed: Seed) -> None:
    # A stolen laptop's cookie: the admin disables the agent, then enables her again to log in afresh.
    login(client, "ann")
    admin = TestClient(app)  # type: ignore[arg-type]
    token = login(admin, "adam")
    for _ in ("off", "on"):
        answer = admin.post(f"/admin/users/{seed.users['ann']}/toggle", data={"csrf_token": token, "what": "active"},
                            follow_redirects=False)
        assert answer.status_code == 303
    response = client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    client.cookies.clear()
    login(client, "ann")  # re-enabled: a new login works

def test_login_next_cannot_leave_the_site(client: TestClient) -> None:
    token = csrf_of(client.get("/login?next=//evil.example/x").text)
    response = client.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token,
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/inbox"


def test_missing_secret_key_generates_one_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from console.config import ConsoleSettings

    monkeypatch.delenv("JOURNEYS_SECRET_KEY", raising=False)
    with caplog.at_level("WARNING"):
        first = ConsoleSettings.from_env()
        second = ConsoleSettings.from_env()
    assert first.secret_generated and first.secret_key != second.secret_key and len(first.secret_key) >= 32
    assert "JOURNEYS_SECRET_KEY is not set" in caplog.text


def test_pages_carry_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
