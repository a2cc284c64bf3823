"""Users, passwords (argon2), sessions and the rights of each role (SPEC §9)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import HTTPException, Request
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from console import usernames
from console.i18n import SUPPORTED
from store.clock import as_utc, utcnow
from store.db import session_scope
from store.models import ROLES, AppUser, AuditLog, KeyValue

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
SESSION_USER = "uid"
# Epoch seconds of the login and of the last request, for the absolute and idle limits.
SESSION_LOGIN_AT = "login_at"
SESSION_SEEN_AT = "seen_at"
# The user's session generation at login. The cookie is the whole session (signed, not stored
# on the server), so logging out could not otherwise stop a copy of the cookie from working:
# logout moves the generation on, and every cookie issued before it is refused.
SESSION_GEN = "gen"
GENERATION_KEY = "console.session_gen:{uid}"

# Rights per role. Agents work their own tasks and the claimable queue with masked PII;
# supervisors see their team's tasks and reassign; ops run journeys and reports; admins
# manage users and read the audit log. Nobody but the assignee's chain sees a task's
# customer, and unmasking it takes more than seeing it (console.tasks.can_reveal).
RIGHTS: dict[str, frozenset[str]] = {
    "agent": frozenset({"tasks"}),
    "supervisor": frozenset({"tasks", "team", "reassign"}),
    "ops": frozenset({"journeys", "reports", "review"}),
    "admin": frozenset({"users", "audit", "journeys", "reports", "review", "approve"}),
    # Compliance (合规审核) reads changes waiting for review and approves, rejects or rolls back
    # journey versions (console.review); approving one's own change is refused whatever the role.
    "compliance": frozenset({"review", "approve"}),
}


class NotAuthenticated(Exception):
    """No valid session: HTML pages redirect to the login page, the API answers 401."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("session expired" if expired else "not authenticated")
        self.expired = expired


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    display_name: str
    role: str
    locale: str
    team: str | None
    skills: frozenset[str] = frozenset()

    def can(self, right: str) -> bool:
        return right in RIGHTS.get(self.role, frozenset())

    @classmethod
    def of(cls, user: AppUser) -> CurrentUser:
        assert user.id is not None
        return cls(user.id, user.username, user.display_name or user.username, user.role, user.locale, user.team,
                   frozenset(user.skills or ()))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class UnknownLocale(ValueError):
    """A user's language the console has no catalogue for."""


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    *,
    display_name: str = "",
    team: str | None = None,
    locale: str = "zh-CN",
    on_shift: bool = True,
) -> AppUser:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if locale not in SUPPORTED:  # stored as it is: a page would be shown in the default language instead
        raise UnknownLocale(f"unknown language {locale!r}: one of {', '.join(SUPPORTED)}")
    _check_password(password)
    # The same rule for every way in (console form, CLI, demo), so no name exists that the form refuses.
    refusal = usernames.problem(session, username)
    if refusal is not None:
        raise ValueError(refusal % {"max": usernames.MAX_LENGTH, "name": repr(username)})
    user = AppUser(
        username=username, display_name=display_name or username, role=role, password_hash=hash_password(password),
        locale=locale, team=team, on_shift=on_shift, created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    # Length alone let ten spaces (or one key held down) through: neither is a secret anyone needs to guess.
    if len(set(password.strip())) < 2:
        raise ValueError("password must not be blank or one character repeated")


def _user_named(session: Session, username: str) -> AppUser:
    user = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if user is None:
        raise ValueError(f"no user {username!r}")
    return user


def set_password(session: Session, username: str, password: str, *, now: datetime | None = None) -> AppUser:
    """A new password for ``username``: the account is unlocked and every session it had is ended."""
    _check_password(password)
    user = _user_named(session, username)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    assert user.id is not None
    # Whoever held the old password may hold a session made with it too.
    revoke_sessions(session, user.id, now or utcnow())
    return user


def deactivate_user(session: Session, username: str, *, now: datetime | None = None) -> AppUser | None:
    """Stop ``username`` from logging in or using a session: the user, or None if already inactive."""
    user = _user_named(session, username)
    if not user.active:
        return None
    user.active = False
    session.add(user)
    assert user.id is not None
    revoke_sessions(session, user.id, now or utcnow())
    return user


def audit(session: Session, actor: str, action: str, target_type: str, target_id: str | int,
          detail: dict[str, object] | None = None, at: datetime | None = None) -> None:
    session.add(AuditLog(actor=actor, action=action, target_type=target_type, target_id=str(target_id),
                         detail=dict(detail or {}), at=at or utcnow()))


LoginOutcome = Literal["ok", "unknown", "password", "inactive", "locked"]


@dataclass(frozen=True)
class LoginResult:
    user: CurrentUser | None
    outcome: LoginOutcome
    # Set when the account is locked (already, or by this very attempt).
    locked_until: datetime | None = None


def attempt_login(username: str, password: str, db_url: str | None = None, *, now: datetime | None = None,
                  max_failures: int = MAX_FAILED_LOGINS, lockout: timedelta = LOCKOUT) -> LoginResult:
    """Check name and password; count failures per account and lock it after ``max_failures``."""
    now = now or utcnow()
    with session_scope(db_url) as session:
        # Ignoring case, as names are told apart (console.usernames): a phone's keyboard capitalises the
        # first letter, and 'Ann' must be ann, her password checked and her failures counted, not a stranger.
        user = session.exec(select(AppUser).where(func.lower(AppUser.username) == username.lower())).first()
        if user is None:
            verify_password(_DUMMY_HASH, password)
            audit(session, username[:64] or "?", "login_failed", "user", username[:64] or "?", {"reason": "unknown"},
                  at=now)
            return LoginResult(None, "unknown")
        if user.locked_until is not None and as_utc(user.locked_until) > now:
            # Not counted and the password not even checked: a locked account tells nothing about it.
            audit(session, user.username, "login_failed", "user", user.id or 0, {"reason": "locked"}, at=now)
            return LoginResult(None, "locked", as_utc(user.locked_until))
        if not user.active or not verify_password(user.password_hash, password):
            outcome: LoginOutcome = "inactive" if not user.active else "password"
            # Counted in the database, not in Python: guesses sent in parallel must each count.
            session.connection().execute(
                update(AppUser).where(col(AppUser.id) == user.id)
                .values(failed_logins=col(AppUser.failed_logins) + 1)
            )
            session.refresh(user)
            audit(session, user.username, "login_failed", "user", user.id or 0, {"reason": outcome}, at=now)
            if user.failed_logins >= max_failures:
                # Lock for a while rather than for good, so an attacker cannot lock agents out indefinitely.
                user.locked_until = now + lockout
                audit(session, user.username, "login_lockout", "user", user.id or 0,
                      {"failures": user.failed_logins, "until": user.locked_until.isoformat()}, at=now)
                user.failed_logins = 0
                return LoginResult(None, "locked", user.locked_until)
            return LoginResult(None, outcome)
        user.failed_logins = 0
        user.locked_until = None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        audit(session, user.username, "login", "user", user.id or 0, at=now)
        return LoginResult(CurrentUser.of(user), "ok")


def authenticate(username: str, password: str, db_url: str | None = None) -> CurrentUser | None:
    """The user if name and password match and the account is active and not locked out."""
    return attempt_login(username, password, db_url).user


# --- sessions -------------------------------------------------------------------------------------


def clock_of(request: Request) -> datetime:
    """Now, by the app's clock (tests replace it to move time without waiting)."""
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", utcnow)
    return clock()


def _generation(session: Session, uid: int) -> int:
    row = session.get(KeyValue, GENERATION_KEY.format(uid=uid))
    value = row.value.get("gen", 0) if row is not None else 0
    return value if isinstance(value, int) else 0


def start_session(request: Request, user: CurrentUser, now: datetime) -> None:
    """A fresh session for ``user`` (nothing chosen before login carries over)."""
    with session_scope(request.app.state.settings.database_url) as session:
        generation = _generation(session, user.id)
    request.session.clear()
    stamp = now.timestamp()
    request.session.update({SESSION_USER: user.id, SESSION_GEN: generation, SESSION_LOGIN_AT: stamp,
                            SESSION_SEEN_AT: stamp})


def end_session(request: Request, now: datetime) -> None:
    """Log out: forget this session and refuse every cookie this user was given before now."""
    uid = request.session.get(SESSION_USER)
    request.session.clear()
    if not isinstance(uid, int):
        return
    with session_scope(request.app.state.settings.database_url) as session:
        revoke_sessions(session, uid, now)


def revoke_sessions(session: Session, uid: int, now: datetime) -> None:
    """Refuse every session cookie user ``uid`` was given before ``now`` (the generation moves on)."""
    key = GENERATION_KEY.format(uid=uid)
    row = session.get(KeyValue, key)
    if row is None:
        session.add(KeyValue(key=key, value={"gen": 1}, updated_at=now))
    else:
        row.value = {"gen": _generation(session, uid) + 1}
        row.updated_at = now
        session.add(row)


def _expired(request: Request, now: datetime) -> bool:
    settings = request.app.state.settings
    login_at = request.session.get(SESSION_LOGIN_AT)
    seen_at = request.session.get(SESSION_SEEN_AT)
    if not isinstance(login_at, (int, float)) or not isinstance(seen_at, (int, float)):
        return True  # a session from before these limits existed: log in again
    stamp = now.timestamp()
    return stamp - seen_at > settings.session_idle_timeout or stamp - login_at > settings.session_lifetime


def load_user(request: Request) -> CurrentUser:
    """The signed-in user of this request (re-read each time, so deactivation takes effect at once)."""
    uid = request.session.get(SESSION_USER)
    if not isinstance(uid, int):
        raise NotAuthenticated()
    now = clock_of(request)
    if _expired(request, now):
        request.session.clear()
        raise NotAuthenticated(expired=True)
    with session_scope(request.app.state.settings.database_url) as session:
        user = session.get(AppUser, uid)
        if user is None or not user.active:
            request.session.clear()
            raise NotAuthenticated()
        if request.session.get(SESSION_GEN) != _generation(session, uid):
            request.session.clear()
            raise NotAuthenticated(expired=True)  # logged out since: this cookie is a stale copy
        current = CurrentUser.of(user)
    request.session[SESSION_SEEN_AT] = now.timestamp()
    return current


def require(user: CurrentUser, right: str) -> None:
    if not user.can(right):
        raise HTTPException(status_code=403, detail="forbidden")
