"""Review before going live, for people: who may do what, and what the review pages show.

The pages (``console.routes_review``) and ``journeys review`` (``engine.cli.review_commands``)
both call these functions with a user name; the state machine, the four-eyes rule and the audit
rows are ``engine.language.journey_review``'s. Seeing changes and submitting them takes the
``review`` right (ops, compliance, admin); approving, rejecting and rolling back the ``approve``
right (compliance and admin, ``console.auth.RIGHTS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from console.auth import RIGHTS
from console.ops_preview import Preview, previews
from engine.language.journey_registry import land_changes
from engine.language.journey_review import (
    PENDING,
    Change,
    ReviewError,
    VersionInfo,
    change,
    decide,
    rollback,
    stored_journey,
    versions,
)
from store.models import AppUser, JourneyVersion


def _user(session: Session, username: str, right: str) -> AppUser:
    user = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if user is None or not user.active:
        raise ReviewError("unknown_user", f"no active user {username!r}")
    if right not in RIGHTS.get(user.role, frozenset()):
        raise ReviewError("no_right", f"{username} ({user.role}) does not have the {right} right")
    return user


def submit_changes(session: Session, username: str) -> list[VersionInfo]:
    """Land the changed journey files signed by ``username``; the versions pending review."""
    _user(session, username, "review")
    land_changes(session, actor=username)
    return pending_versions(session)


def pending_versions(session: Session) -> list[VersionInfo]:
    return [v for v in versions(session) if v.state == PENDING]


def approve(session: Session, username: str, version_id: int, comment: str, *,
            now: datetime | None = None) -> JourneyVersion:
    _user(session, username, "approve")
    return decide(session, version_id, username, True, comment, now=now)


def reject(session: Session, username: str, version_id: int, comment: str, *,
           now: datetime | None = None) -> JourneyVersion:
    _user(session, username, "approve")
    return decide(session, version_id, username, False, comment, now=now)


def roll_back(session: Session, username: str, version_id: int, comment: str, *,
              now: datetime | None = None) -> JourneyVersion:
    _user(session, username, "approve")
    return rollback(session, version_id, username, comment, now=now)


@dataclass(frozen=True)
class ReviewPage:
    change: Change
    history: list[VersionInfo]
    previews: list[Preview]
    name: str


def review_page(session: Session, version_id: int) -> ReviewPage:
    """A version, its diff against the version in force, its rendered messages and its journey's history."""
    found = change(session, version_id)
    loaded = stored_journey(found.version)
    shown = previews(loaded.journey) if loaded is not None else []
    name = loaded.journey.name if loaded is not None else found.version.journey_id
    return ReviewPage(found, versions(session, found.version.journey_id), shown, name)
