"""Users, passwords (argon2), sessions and the rights of each role (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import HTTPException, Request
from sqlmodel import Session, select

from store.clock import as_utc, utcnow
from store.db import session_scope
from store.models import ROLES, AppUser, AuditLog

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8
SESSION_USER = "uid"

# Rights per role. Agents work their own tasks and the claimable queue with masked PII;
# supervisors see their team's tasks and reassign; ops run journeys and reports; admins
# manage users. Nobody but the assignee's chain sees a task's customer.
RIGHTS: dict[str, frozenset[str]] = {
    "agent": frozenset({"tasks"}),
    "supervisor": frozenset({"tasks", "team", "reassign"}),
    "ops": frozenset({"journeys", "reports"}),
    "admin": frozenset({"users", "journeys", "reports"}),
}


class NotAuthenticated(Exception):
    """No valid session: HTML pages redirect to the login page, the API answers 401."""


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    display_name: str
    role: str
    locale: str
    team: str | None

    def can(self, right: str) -> bool:
        return right in RIGHTS.get(self.role, frozenset())

    @classmethod
    def of(cls, user: AppUser) -> CurrentUser:
        assert user.id is not None
        return cls(user.id, user.username, user.display_name or user.username, user.role, user.locale, user.team)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


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
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if not username.strip():
        raise ValueError("username must not be empty")
    if session.exec(select(AppUser).where(AppUser.username == username)).first() is not None:
        raise ValueError(f"user {username!r} already exists")
    user = AppUser(
        username=username, display_name=display_name or username, role=role, password_hash=hash_password(password),
        locale=locale, team=team, on_shift=on_shift, created_at=utcnow(),
    )
    session.add(user)
    session.flush()
    return user


def audit(session: Session, actor: str, action: str, target_type: str, target_id: str | int,
          detail: dict[str, object] | None = None, at: datetime | None = None) -> None:
    session.add(AuditLog(actor=actor, action=action, target_type=target_type, target_id=str(target_id),
                         detail=dict(detail or {}), at=at or utcnow()))


def authenticate(username: str, password: str, db_url: str | None = None) -> CurrentUser | None:
    """The user if name and password match and the account is active and not locked out."""
    now = utcnow()
    with session_scope(db_url) as session:
        user = session.exec(select(AppUser).where(AppUser.username == username)).first()
        if user is None:
            verify_password(_DUMMY_HASH, password)
            audit(session, username[:64] or "?", "login_failed", "user", username[:64] or "?", {"reason": "unknown"})
            return None
        if user.locked_until is not None and as_utc(user.locked_until) > now:
            audit(session, user.username, "login_failed", "user", user.id or 0, {"reason": "locked"})
            return None
        if not user.active or not verify_password(user.password_hash, password):
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                # Lock for a while rather than for good, so an attacker cannot lock agents out indefinitely.
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
            audit(session, user.username, "login_failed", "user", user.id or 0,
                  {"reason": "inactive" if not user.active else "password"})
            return None
        user.failed_logins = 0
        user.locked_until = None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        audit(session, user.username, "login", "user", user.id or 0)
        return CurrentUser.of(user)


def load_user(request: Request) -> CurrentUser:
    """The signed-in user of this request (re-read each time, so deactivation takes effect at once)."""
    uid = request.session.get(SESSION_USER)
    if not isinstance(uid, int):
        raise NotAuthenticated()
    with session_scope(request.app.state.settings.database_url) as session:
        user = session.get(AppUser, uid)
        if user is None or not user.active:
            request.session.clear()
            raise NotAuthenticated()
        return CurrentUser.of(user)


def require(user: CurrentUser, right: str) -> None:
    if not user.can(right):
        raise HTTPException(status_code=403, detail="forbidden")
