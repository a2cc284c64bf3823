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

The entry itself is the version in force's to judge too: who may enter (tiers, audience conditions) and when
(the schedule or date). Runs plan entries ahead of their ``now``, so an entry due after the edit came in may
have been judged under the old file: a customer the edited audience leaves out would be sent the old plan,
one it takes in would never enter, and a moved schedule would fire at both times. So an enrollment entered
under another version at a moment after both the edit and the last run's ``now`` (so entered ahead, nothing
of it done yet) is taken back whole: its untried touches withdrawn and the enrollment deleted. The plan run
judges that journey's entries again from that moment (``ChunkPlanner.entries_again``): those the version in force
admits enter afresh, others never did.

Both sides take touches back. Each plan run, for every journey whose version in force the whole book's run
has not settled yet (KeyValue ``journey_replanned:<id>`` holds the last version settled, so an idle tick
reads one row per journey; it is written only once the run that judged the entries again is written, so a
run that dies first leaves it for the next); and dispatch, for a touch it claimed before a plan run came
round (``engine.sending.sendable``).
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


def withdraw(conn: Connection, touch_ids: Sequence[int], status: str, reason: str | None = None) -> int:
    """Withdraw the touches ``touch_ids`` still in ``status`` (planned ones from a plan run; ones dispatch
    has just recorded as cancelled): cancel them, free their keys, and take their enrollments back to the
    earliest of them. ``reason``: why (default: their journey was edited). The number withdrawn."""
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
        [{"id": r.id, "reason": reason or edited_reason(r.journey_id), "status": status, "room": _KEY_ROOM,
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
        # Never forward: an enrollment already back before this moment, or at it at a step whose touch was
        # planned first (another withdrawal came first: a batch of another dispatcher, or an earlier one of
        # this), stays where it is. Whichever order two withdrawals of one enrollment commit in, it ends at the
        # earliest: on PostgreSQL the second UPDATE waits for the first's row lock and judges the row it left,
        # and the touches it compares with were all written when they were planned.
        conn.execute(
            text("UPDATE enrollment SET state = 'waiting', step_id = :step, step_started_at = :at, next_at = :at, "
                 "exited_at = NULL, exit_reason = NULL WHERE customer_id = :c AND journey_id = :j AND occurrence = :o "
                 "AND NOT (state = 'waiting' AND next_at IS NOT NULL AND (next_at < :at OR (next_at = :at "
                 "AND NOT EXISTS (SELECT 1 FROM touch t WHERE t.customer_id = :c AND t.journey_id = :j "
                 "AND t.occurrence = :o AND t.step_id = enrollment.step_id AND t.planned_for = :at AND t.id > :id))))")
            .bindparams(bindparam("at", type_=UTCDateTime())),
            [{"c": c, "j": j, "o": o, "step": r.step_id, "at": _moment(r.planned_for), "id": r.id}
             for (c, j, o), r in earliest.items()],
        )
    return len(found)


def _moment(raw: Any) -> datetime:
    if isinstance(raw, str):
        return as_utc(datetime.fromisoformat(raw))
    return as_utc(raw)


def take_back_edits(session: Session, journeys: Iterable[LoadedJourney], judged_to: datetime) -> dict[str, datetime]:
    """A plan run's part: for the journeys in force whose edition is not settled yet, withdraw what was
    planned under another version since their edition came in, and take back the entries judged ahead under
    it (see the module docstring). ``judged_to``: the ``now`` of the last run, up to which entries were judged
    at their moment. Commits nothing; journey id → the moment after which its entries are to be judged again
    (``settle`` marks them once the run has)."""
    versions = {lj.id: lj.version for lj in journeys}
    if not versions:
        return {}
    marks = {row.key[len(MARK_PREFIX):]: row for row in session.execute(
        KeyValue.__table__.select().where(  # type: ignore[attr-defined]
            KeyValue.__table__.c.key.in_([MARK_PREFIX + j for j in versions]))  # type: ignore[attr-defined]
    ).all()}
    todo = {j: v for j, v in versions.items() if j not in marks or (marks[j].value or {}).get("version") != v}
    out: dict[str, datetime] = {}
    conn = session.connection()
    for journey_id, edition in sorted(editions(session, todo).items()):
        since = bindparam("since", type_=UTCDateTime())
        # Dropped ones too: the cap or a channel decided them under the old file, and their keys would keep
        # the version in force from deciding the same step.
        for status in (TouchStatus.PLANNED, TouchStatus.DROPPED):
            withdraw(conn, [r.id for r in conn.execute(
                text("SELECT id FROM touch WHERE journey_id = :j AND planned_for >= :since AND status = :status "
                     "AND attempts = 0 AND journey_version <> :v").bindparams(since),
                {"j": journey_id, "since": edition.since, "status": status, "v": edition.version},
            ).all()], status)
        out[journey_id] = max(edition.since, as_utc(judged_to))
        _take_back_entries(conn, journey_id, edition.version, out[journey_id])
    return out


def _take_back_entries(conn: Connection, journey_id: str, version: str, after: datetime) -> None:
    """Delete the enrollments entered under another version after ``after`` of which nothing is left but
    withdrawn touches (keys with ``~``): the plan run judges their entries again. One with anything else (a
    touch tried, a task) keeps its rewind: it did begin. (Every row that names an enrollment by id, an
    escalated task's, also carries its customer, journey and occurrence, which the index of each table serves.)"""
    conn.execute(
        text("DELETE FROM enrollment WHERE journey_id = :j AND journey_version <> :v AND entered_at > :after "
             "AND NOT EXISTS (SELECT 1 FROM touch t WHERE t.customer_id = enrollment.customer_id "
             "AND t.journey_id = enrollment.journey_id AND t.occurrence = enrollment.occurrence "
             "AND t.key NOT LIKE '%~%') "
             "AND NOT EXISTS (SELECT 1 FROM agent_task a WHERE a.customer_id = enrollment.customer_id "
             "AND a.journey_id = enrollment.journey_id AND a.occurrence = enrollment.occurrence)")
        .bindparams(bindparam("after", type_=UTCDateTime())),
        {"j": journey_id, "v": version, "after": after},
    )


def settle(session: Session, journeys: Iterable[LoadedJourney], journey_ids: Iterable[str], at: datetime) -> None:
    """Mark the editions of ``journey_ids`` settled: the run that judged their entries again is written.
    Commits nothing."""
    versions = {lj.id: lj.version for lj in journeys}
    for journey_id in sorted(set(journey_ids) & versions.keys()):
        session.merge(KeyValue(key=MARK_PREFIX + journey_id, value={"version": versions[journey_id]},
                               updated_at=at))
