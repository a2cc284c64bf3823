"""Unmasking a task's customer: who may, how often (counted from the audit log), and bursts worth an alert."""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from console.auth import CurrentUser, audit
from console.config import ConsoleSettings
from console.task_rights import TaskError, TaskForbidden, can_reveal, load_visible, reveal_refusal
from store.clock import as_utc, utcnow
from store.db import session_scope
from store.models import AgentTask, AppUser, AuditLog, Customer

# The burst alert keeps the logger it always had: monitoring filters on it.
log = logging.getLogger("console.tasks")


class RevealLimited(TaskError):
    """Too many reveals by this user in the rolling window; ``retry_after`` seconds until the next is allowed."""

    status = 429

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__("reveal_limited")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True)
class RevealPolicy:
    """How often one user may unmask customers, and what counts as a burst worth an alert."""

    limit: int = 30
    window: timedelta = timedelta(hours=1)
    burst_count: int = 10
    burst_window: timedelta = timedelta(minutes=10)


def reveal_policy(settings: ConsoleSettings) -> RevealPolicy:
    return RevealPolicy(limit=settings.reveal_limit_per_hour, window=timedelta(hours=1),
                        burst_count=settings.reveal_burst_count,
                        burst_window=timedelta(seconds=settings.reveal_burst_window))


def reveal(user: CurrentUser, task_id: int, *, policy: RevealPolicy | None = None, db_url: str | None = None,
           now: datetime | None = None) -> dict[str, str]:
    """The customer's unmasked contact details, for someone working the task; every attempt is audited.

    Refusals are audited too (``reveal_refused``), so the audit view shows someone probing
    task ids or hammering the limit. Raises TaskNotFound (task unknown or not visible),
    TaskForbidden (visible, but not claimed by the user: ``reveal_needs_claim`` when claiming it is
    theirs to do, ``reveal_not_working`` for a task another holds or a closed one) or RevealLimited.
    """
    policy = policy or RevealPolicy()
    now = now or utcnow()
    refusal: TaskError
    with session_scope(db_url) as session:
        try:
            return _unmask(session, user, load_visible(user, session, task_id), policy, now)
        except TaskError as exc:
            refusal = exc
            audit(session, user.username, "reveal_refused", "task", task_id, {"reason": exc.code}, at=now)
    raise refusal


def _unmask(session: Session, user: CurrentUser, task: AgentTask, policy: RevealPolicy, now: datetime
            ) -> dict[str, str]:
    if not can_reveal(user, session, task):
        raise TaskForbidden(reveal_refusal(user, session, task))
    _serialise_reveals_of(session, user)
    recent = _reveal_times(session, user.username, now - policy.window)
    if len(recent) >= policy.limit:
        # A slot frees up when the reveal that put the user at the limit leaves the window.
        frees_at = recent[len(recent) - policy.limit] + policy.window
        raise RevealLimited(policy.limit, max(1, math.ceil((frees_at - now).total_seconds())))
    customer = session.get(Customer, task.customer_id)
    assert customer is not None and customer.id is not None
    audit(session, user.username, "reveal", "customer", customer.id,
          {"task_id": task.id, "fields": ["name", "phone", "email"]}, at=now)
    in_burst = sum(1 for at in recent if at > now - policy.burst_window) + 1
    if in_burst == policy.burst_count:
        # Logged once, as the user reaches the threshold: the alert for monitoring (the audit page lists it too).
        log.warning("reveal burst: user %s unmasked %d customers within %d minutes", user.username, in_burst,
                    int(policy.burst_window.total_seconds() // 60))
    return {"name": customer.name, "phone": customer.phone or "", "email": customer.email or ""}


def _serialise_reveals_of(session: Session, user: CurrentUser) -> None:
    # Two reveals by one user at once (two tabs, two workers) must not both pass a count taken
    # before either wrote its audit row. Writing the user's row first makes the second wait for
    # the first to commit: a row lock on PostgreSQL, the write lock on SQLite.
    session.connection().execute(update(AppUser).where(col(AppUser.id) == user.id).values(id=col(AppUser.id)))


def _reveal_times(session: Session, username: str, since: datetime) -> list[datetime]:
    return [
        as_utc(at)
        for at in session.exec(
            select(AuditLog.at)
            .where(col(AuditLog.actor) == username, col(AuditLog.action) == "reveal", col(AuditLog.at) > since)
            .order_by(col(AuditLog.at))
        )
    ]


@dataclass(frozen=True)
class RevealBurst:
    """A user whose attempts to unmask customers reached the burst threshold within the burst window."""

    actor: str
    peak: int  # attempts (reveals and refusals) in the busiest burst window
    window_start: datetime
    window_end: datetime
    reveals: int  # in the whole period looked at
    refused: int


REVEAL_ACTIONS = ("reveal", "reveal_refused")


def reveal_bursts(policy: RevealPolicy, *, since: datetime, actors: list[str] | None = None,
                  db_url: str | None = None) -> list[RevealBurst]:
    """Users with a burst of reveal attempts since ``since``, busiest first (``actors`` narrows to a team)."""
    if actors is not None and not actors:
        return []
    period = [col(AuditLog.action).in_(REVEAL_ACTIONS), col(AuditLog.at) > since]
    if actors is not None:
        period.append(col(AuditLog.actor).in_(actors))
    # Every attempt of the period in one statement, a range of ix_audit_log_action_at read from the index alone
    # (migration 0018): asking once per user sent as many statements as there were revealing users, and
    # grouping the log by actor first read the whole log's history.
    by_actor: dict[str, list[tuple[datetime, str]]] = {}
    with session_scope(db_url) as session:
        # Unordered: sorted here, per user, so that the index's range needs no sort of its own.
        for actor, at, action in session.exec(select(AuditLog.actor, AuditLog.at, AuditLog.action).where(*period)):
            by_actor.setdefault(actor, []).append((as_utc(at), action))
    # Only users with enough attempts in the whole period can have a burst.
    bursts = [b for actor, rows in by_actor.items()
              if len(rows) >= policy.burst_count and (b := _busiest_window(actor, sorted(rows), policy)) is not None]
    bursts.sort(key=lambda b: (-b.peak, b.actor))
    return bursts


def _busiest_window(actor: str, rows: list[tuple[datetime, str]], policy: RevealPolicy) -> RevealBurst | None:
    window: deque[datetime] = deque()
    peak, start, end = 0, rows[0][0], rows[0][0]
    for at, _action in rows:
        window.append(at)
        while window[0] <= at - policy.burst_window:
            window.popleft()
        if len(window) > peak:
            peak, start, end = len(window), window[0], at
    if peak < policy.burst_count:
        return None
    reveals = sum(1 for _at, action in rows if action == "reveal")
    return RevealBurst(actor, peak, start, end, reveals, len(rows) - reveals)
