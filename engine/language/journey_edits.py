"""What an edit of a journey in force takes back from the plan.

``journeys run`` plans every customer through the end of the next local day
(``engine.planning.lookahead``), so a touch decided under one version of a file can fall due after
another version came in force: a new template, a step removed, a condition or wait changed. The file in
force at a touch's moment decides, as for a journey switched off (``engine.language.journey_switches``).
A touch planned under another version for a moment at or after the version in force came in
(``planned_for``), never tried, is withdrawn: cancelled with its reason, its key freed (the cancelled row
keeps it with ``~<id>`` after it) so that the same step can be planned again, and its enrollment goes back,
waiting, to the step and moment of its earliest withdrawn touch. The next plan run decides again from
there under the version in force; a step that version no longer has ends the enrollment there, as it does
any enrollment waiting at a removed step. What fell before the edit stands: the file in force then decided.

Both sides take touches back. Each plan run, for every journey whose version in force it has not settled
yet (KeyValue ``journey_replanned:<id>`` holds the last version settled, so an idle tick reads one row per
journey); and dispatch, for a touch it claimed before a plan run came round (``engine.sending.sendable``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from engine.language.validation import LoadedJourney
from store.clock import as_utc
from store.models import JourneyVersion, KeyValue, TouchStatus

EDITED = "journey_edited"
MARK_PREFIX = "journey_replanned:"
# A withdrawn touch keeps its key with ``~<id>`` after it; cut first so the key stays within its column.
_KEY_ROOM = 240


@dataclass(frozen=True)
class Edition:
    """The version of a journey in force and the moment it came in force."""

    version: str
    since: datetime

    def supersedes(self, version: str, planned_for: datetime) -> bool:
        """Whether a touch planned under ``version`` for ``planned_for`` is this edition's to decide again."""
        return version != self.version and as_utc(planned_for) >= self.since


def edited_reason(journey_id: str) -> str:
    return f"journey {journey_id} edited: planned again under the version in force"


def editions(session: Session, versions: dict[str, str]) -> dict[str, Edition]:
    """Journey id → its edition, for ``versions`` (journey id → version in force)."""
    if not versions:
        return {}
    v = JourneyVersion.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        v.select().with_only_columns(v.c.journey_id, v.c.version, v.c.in_force_at, v.c.published_at)
        .where(v.c.journey_id.in_(sorted(versions)))
    ).all()
    out: dict[str, Edition] = {}
    for journey_id, version, in_force_at, published_at in rows:
        if versions.get(journey_id) == version:
            out[journey_id] = Edition(version, as_utc(in_force_at or published_at))
    return out


def retired(session: Session, in_force: Iterable[str]) -> frozenset[str]:
    """The journeys this store has had in force that are not in force now (their file was removed)."""
    v = JourneyVersion.__table__  # type: ignore[attr-defined]
    known = session.execute(v.select().with_only_columns(v.c.journey_id).where(v.c.kind == "journey").distinct())
    return frozenset(j for (j,) in known) - frozenset(in_force)


def withdraw(conn: Connection, touch_ids: Sequence[int], status: str) -> int:
    """Withdraw the touches ``touch_ids`` still in ``status`` (planned ones from a plan run; ones dispatch
    has just recorded as cancelled): cancel them, free their keys, and take their enrollments back to the
    earliest of them. The number withdrawn."""
    if not touch_ids:
        return 0
    ids = sorted(set(touch_ids))
    found = conn.execute(
        text("SELECT id, customer_id, journey_id, occurrence, step_id, planned_for FROM touch "
             "WHERE id IN :ids AND status = :status").bindparams(bindparam("ids", expanding=True)),
        {"ids": ids, "status": status},
    ).all()
    if not found:
        return 0
    conn.execute(
        text("UPDATE touch SET status = :cancelled, error_reason = :reason, next_attempt_at = NULL, "
             "key = substr(key, 1, :room) || '~' || CAST(id AS TEXT) WHERE id = :id AND status = :status"),
        [{"id": r.id, "reason": edited_reason(r.journey_id), "status": status, "room": _KEY_ROOM,
          "cancelled": TouchStatus.CANCELLED} for r in found],
    )
    # The enrollment goes back to its earliest withdrawn touch; of two at one moment, the one planned first
    # (a send right after another, with no wait between) comes first.
    # The planner writes touches beside their enrollments in one bulk insert, without the enrollment's id: a
    # touch finds its enrollment by the enrollment's unique key, which the touch carries.
    earliest: dict[tuple[int, str, str], Any] = {}
    for r in found:
        known = earliest.get((r.customer_id, r.journey_id, r.occurrence))
        if known is None or (_moment(r.planned_for), r.id) < (_moment(known.planned_for), known.id):
            earliest[(r.customer_id, r.journey_id, r.occurrence)] = r
    if earliest:
        # Never forward: an enrollment already back at or before this moment (another withdrawal came
        # first) stays where it is.
        conn.execute(
            text("UPDATE enrollment SET state = 'waiting', step_id = :step, step_started_at = :at, next_at = :at, "
                 "exited_at = NULL, exit_reason = NULL WHERE customer_id = :c AND journey_id = :j AND occurrence = :o "
                 "AND NOT (state = 'waiting' AND next_at IS NOT NULL AND next_at <= :at)")
            .bindparams(bindparam("at", type_=UTCDateTime())),
            [{"c": c, "j": j, "o": o, "step": r.step_id, "at": _moment(r.planned_for)}
             for (c, j, o), r in earliest.items()],
        )
    return len(found)


def _moment(raw: Any) -> datetime:
    if isinstance(raw, str):
        return as_utc(datetime.fromisoformat(raw))
    return as_utc(raw)


def take_back_edits(session: Session, journeys: Iterable[LoadedJourney]) -> int:
    """A plan run's part: withdraw what journeys in force planned under another version since their
    edition came in, once per edition. Commits nothing; the number of touches withdrawn."""
    versions = {lj.id: lj.version for lj in journeys}
    if not versions:
        return 0
    marks = {row.key[len(MARK_PREFIX):]: row for row in session.execute(
        KeyValue.__table__.select().where(  # type: ignore[attr-defined]
            KeyValue.__table__.c.key.in_([MARK_PREFIX + j for j in versions]))  # type: ignore[attr-defined]
    ).all()}
    todo = {j: v for j, v in versions.items() if j not in marks or (marks[j].value or {}).get("version") != v}
    if not todo:
        return 0
    withdrawn = 0
    conn = session.connection()
    for journey_id, edition in sorted(editions(session, todo).items()):
        ids = [r.id for r in conn.execute(
            text("SELECT id FROM touch WHERE journey_id = :j AND planned_for >= :since AND status = :planned "
                 "AND attempts = 0 AND journey_version <> :v")
            .bindparams(bindparam("since", type_=UTCDateTime())),
            {"j": journey_id, "since": edition.since, "planned": TouchStatus.PLANNED, "v": edition.version},
        ).all()]
        withdrawn += withdraw(conn, ids, TouchStatus.PLANNED)
        session.merge(KeyValue(key=MARK_PREFIX + journey_id, value={"version": edition.version},
                               updated_at=edition.since))
    return withdrawn
