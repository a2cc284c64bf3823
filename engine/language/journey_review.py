"""Review before going live: which approved version of each journey is in force.

Authors edit the files in ``journeys/``; every valid file's content hash is a ``JourneyVersion``
row. A hash "lands" the first time the registry sees it (the planner, explain, simulate and the
event loop all read the journeys through ``load_in_force``; an author's ``journeys review
submit`` or the review page's button does it on purpose and signs the change):

- if its category needs review (``config/review.yaml``; marketing on by default, an unknown
  category counts as needing it, and so does a change of category away from one that needs it),
  it is stored ``pending`` and the journey's last approved version stays in force; a journey with
  no approved version yet is not in force at all;
- otherwise it is stored ``approved`` and goes in force at once, as before review existed;
- on first start (no version stored at all) everything on disk counts as approved: the shipped
  programme. Rows stored before migration 0008 are approved too.

The version in force is the approved row with the latest ``in_force_at`` (``published_at`` for
rows older than review). Approving a pending version puts it in force; rejecting it keeps the
version in force (the file stays as the author left it, shown as rejected until it changes again);
a rollback puts any earlier approved version back in force in one step, and it stays there while
the file keeps a content that was already decided. A known hash never changes state by being seen
again, so only a new edit of the file lands a new pending version.

Approving and rejecting need a comment and a reviewer who is not the submitter (four eyes). A
change that landed on its own is signed by ``files`` until an author submits it; who holds the
approve right is the console's business (``console.review``), the one place pages and the CLI go
through. Every step writes an ``AuditLog`` row (``journey_version_*``).

Templates and the delivery settings follow the same rule through the same table and functions
(``kind`` tells them apart, migration 0012; ``engine.language.template_review`` and
``engine.language.settings_review`` read the files and say which version is in force): a
template folder is one version, reviewed when its category needs it (marketing if any marketing
journey sends it), ``config/delivery.yaml`` and ``config/tiers.yaml`` always. Their audit rows
are ``template_version_*`` and ``setting_version_*``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from engine.language.journey_model import Journey
from engine.language.paths import config_dir
from engine.language.problems import Problem, load_config, parse_model
from engine.language.settings_model import ReviewConfig
from engine.language.validation import LoadedJourney
from engine.language.yaml_lines import load_located
from store.clock import utcnow
from store.models import AuditLog, JourneyVersion

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
# The submitter of a change that landed without an author signing it.
FROM_FILES = "files"
MAX_COMMENT = 500
version_t: sa.Table = JourneyVersion.__table__  # type: ignore[attr-defined]
log = logging.getLogger(__name__)
T = TypeVar("T")


class ReviewConfigError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def review_config_path() -> Path:
    return config_dir() / "review.yaml"


def load_review_config(path: Path | None = None) -> ReviewConfig:
    config, problems = load_config(ReviewConfig, path or review_config_path(), optional=True)
    if config is None:
        raise ReviewConfigError(problems)
    return config


def effective_review_config() -> ReviewConfig:
    """``config/review.yaml``, or, while it is invalid, review for every category (and a warning with
    its problems as file:line:col): a typo there must neither stop the planner nor let changes through."""
    try:
        return load_review_config()
    except ReviewConfigError as exc:
        log.warning("%s\nuntil it is fixed, every journey change waits for review", exc)
        return ReviewConfig(categories={})


class ReviewError(ValueError):
    """A review step that is not allowed; ``code`` names why (pages translate it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def stored_journey(row: Any) -> LoadedJourney | None:
    """The journey a stored version holds (it was valid when stored; a parse failure gives None)."""
    try:
        journey, problems = parse_model(Journey, load_located(row.source), row.path)
    except Exception:  # a stored version must never stop the planner or a page
        return None
    return None if journey is None or problems else LoadedJourney(journey, row.path, row.source, row.version)


def _audit(session: Session, actor: str, step: str, row: JourneyVersion, at: datetime, **detail: object) -> None:
    """``<kind>_<step>`` on target ``<kind>_version`` (``journey_version_approved``, ``template_version_…``)."""
    kind = row.kind or JOURNEY
    session.add(AuditLog(actor=actor[:64], action=f"{kind}_{step}", target_type=f"{kind}_version",
                         target_id=str(row.id), detail={"journey": row.journey_id, "version": row.version, **detail},
                         at=at))


def _in_force_key(row: Any) -> tuple[datetime, int]:
    return (row.in_force_at or row.published_at, row.id or 0)


def in_force_of(rows: Iterable[Any]) -> dict[str, Any]:
    """Journey id → its row in force, among ``rows`` (any objects with the version columns)."""
    out: dict[str, Any] = {}
    for row in rows:
        if row.review_state != APPROVED:
            continue
        current = out.get(row.journey_id)
        if current is None or _in_force_key(row) > _in_force_key(current):
            out[row.journey_id] = row
    return out


def _category(row: JourneyVersion) -> str | None:
    stored = stored_journey(row)
    return stored.journey.category if stored is not None else None


JOURNEY = "journey"


@dataclass(frozen=True)
class Landing:
    """One file (or template folder) as read now: what ``land_versions`` stores if its version is new."""

    subject: str  # the journey id, or a prefixed name for the other kinds (``template:<name>``)
    version: str  # content hash
    path: str
    source: str
    category: str


def land(session: Session, journeys: Sequence[LoadedJourney], key_of: Callable[[str], str], *,
         actor: str = FROM_FILES, config: ReviewConfig | None = None,
         now: datetime | None = None) -> dict[str, JourneyVersion]:
    """Record the versions of ``journeys`` not seen before (see the module doc); the rows in force by journey id.

    With ``actor`` other than ``FROM_FILES`` an author signs the pending changes of these files
    that landed unsigned, so they cannot approve them themselves.
    """
    items = [Landing(j.id, j.version, key_of(j.path), j.source, j.journey.category) for j in journeys]
    return land_versions(session, JOURNEY, items, lambda row: _category(row) or "", actor=actor,
                         config=config, now=now)


def land_versions(session: Session, kind: str, items: Sequence[Landing], category_of: Callable[[Any], str], *,
                  actor: str = FROM_FILES, config: ReviewConfig | None = None, now: datetime | None = None,
                  always: bool = False) -> dict[str, JourneyVersion]:
    """``land`` for any kind of reviewed file; ``category_of`` gives a stored row's category, ``always``
    makes every change of this kind need review whatever its category (the delivery settings)."""
    config = config or effective_review_config()
    now = now or utcnow()
    rows = list(session.exec(select(JourneyVersion).where(JourneyVersion.kind == kind)
                             .order_by(col(JourneyVersion.published_at), col(JourneyVersion.id))).all())
    first_start = not rows
    known = {(r.journey_id, r.version): r for r in rows}
    in_force = in_force_of(rows)
    for item in items:
        row = known.get((item.subject, item.version))
        if row is None:
            current = in_force.get(item.subject)
            needs = not first_start and (
                always or config.required(item.category)
                or (current is not None and config.required(category_of(current)))
            )
            row = JourneyVersion(
                journey_id=item.subject, version=item.version, path=item.path, source=item.source, kind=kind,
                published_at=now, review_state=PENDING if needs else APPROVED, submitted_by=actor[:64],
                in_force_at=None if needs else now,
            )
            session.add(row)
            session.flush()
            known[(item.subject, item.version)] = row
            _audit(session, actor, "version_pending" if needs else "version_published", row, now,
                   install=first_start)
            if not needs:
                in_force[item.subject] = row
        elif actor != FROM_FILES and row.review_state == PENDING and row.submitted_by == FROM_FILES:
            row.submitted_by = actor[:64]
            session.add(row)
            _audit(session, actor, "version_submitted", row, now)
    session.flush()
    return in_force


def land_committed(session: Session, landing: Callable[[], T]) -> T:
    """Run ``landing`` and commit; if another process landed the same version first, read theirs."""
    try:
        found = landing()
        session.commit()
    except IntegrityError:
        session.rollback()
        found = landing()
        session.commit()
    return found


def _row(session: Session, version_id: int) -> JourneyVersion:
    row = session.get(JourneyVersion, version_id)
    if row is None:
        raise ReviewError("not_found", f"no journey version {version_id}")
    return row


def _in_force_row(session: Session, journey_id: str) -> JourneyVersion | None:
    rows = session.exec(select(JourneyVersion).where(JourneyVersion.journey_id == journey_id))
    found: JourneyVersion | None = in_force_of(rows).get(journey_id)
    return found


def _step(session: Session, version_id: int, comment: str, state: str) -> tuple[JourneyVersion, str]:
    """The version a review step acts on, which must be in ``state``, and the step's comment."""
    text = comment.strip()
    if not text:
        raise ReviewError("comment_required", "a comment is required")
    if len(text) > MAX_COMMENT:
        raise ReviewError("comment_too_long", f"a comment has at most {MAX_COMMENT} characters")
    row = _row(session, version_id)
    if row.review_state != state:
        code = "not_pending" if state == PENDING else "not_approved"
        raise ReviewError(code, f"version {version_id} is {row.review_state}, not {state}")
    return row, text


def decide(session: Session, version_id: int, actor: str, approve: bool, comment: str, *,
           now: datetime | None = None) -> JourneyVersion:
    """Approve (it goes in force) or reject a pending version; never the submitter's own."""
    now = now or utcnow()
    row, text = _step(session, version_id, comment, PENDING)
    if row.submitted_by == actor:
        raise ReviewError("own_change", f"{actor} submitted version {version_id} and cannot review it")
    row.review_state = APPROVED if approve else REJECTED
    row.reviewed_by, row.reviewed_at, row.review_comment = actor[:64], now, text
    if approve:
        row.in_force_at = now
    session.add(row)
    session.flush()
    _audit(session, actor, "version_approved" if approve else "version_rejected", row, now,
           comment=text, submitted_by=row.submitted_by)
    return row


def rollback(session: Session, version_id: int, actor: str, comment: str, *,
             now: datetime | None = None) -> JourneyVersion:
    """Put an earlier approved version back in force."""
    now = now or utcnow()
    row, text = _step(session, version_id, comment, APPROVED)
    previous = _in_force_row(session, row.journey_id)
    if previous is not None and previous.id == row.id:
        raise ReviewError("already_in_force", f"version {version_id} is already in force")
    row.in_force_at = now
    session.add(row)
    session.flush()
    _audit(session, actor, "version_rollback", row, now, comment=text,
           replaced=previous.version if previous is not None else None)
    return row


@dataclass(frozen=True)
class VersionInfo:
    id: int
    journey_id: str
    version: str
    path: str
    state: str
    published_at: datetime
    submitted_by: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    comment: str | None
    in_force: bool
    kind: str = JOURNEY


def versions(session: Session, journey_id: str | None = None) -> list[VersionInfo]:
    """Every stored version (of one journey), newest first, with which one is in force; sources left out."""
    v = version_t
    query = sa.select(v.c.id, v.c.journey_id, v.c.version, v.c.path, v.c.review_state, v.c.published_at,
                      v.c.submitted_by, v.c.reviewed_by, v.c.reviewed_at, v.c.review_comment, v.c.in_force_at,
                      v.c.kind)
    if journey_id is not None:
        query = query.where(v.c.journey_id == journey_id)
    rows = session.execute(query.order_by(v.c.published_at.desc(), v.c.id.desc())).all()
    in_force = {r.id for r in in_force_of(rows).values()}
    return [VersionInfo(r.id, r.journey_id, r.version, r.path, r.review_state, r.published_at, r.submitted_by,
                        r.reviewed_by, r.reviewed_at, r.review_comment, r.id in in_force, r.kind) for r in rows]


@dataclass(frozen=True)
class Change:
    version: JourneyVersion
    in_force: JourneyVersion | None
    diff: list[str]


def change(session: Session, version_id: int) -> Change:
    """A version with the journey's version in force and the unified diff between them."""
    row = _row(session, version_id)
    base = _in_force_row(session, row.journey_id)
    before = base.source if base is not None else ""
    label = f"{row.journey_id} {base.version[:8]} (in force)" if base is not None else f"{row.journey_id} (none)"
    diff = list(difflib.unified_diff(before.splitlines(), row.source.splitlines(), fromfile=label,
                                     tofile=f"{row.journey_id} {row.version[:8]}", lineterm=""))
    return Change(row, base, diff)
