"""Monitoring cadence of SPEC §8: the daily churn-warning check and the weekly tier review.

``churn_warning_check`` (daily) raises ``churn.warning`` events for customers whose
activity is falling; the churn-warning journey reacts to them.

``run_tier_review`` (weekly) computes churn per tier over the review window and, for a
tier above the threshold (15%), performs the dynamic adjustment exactly once per tier
per review window:

- switches on the tier's extra journeys (KeyValue ``journey_enabled:<id>`` =
  ``{"enabled": true, ...}``, which the planner honours), and switches them off again
  at a later review that finds the tier back under the threshold;
- creates an ops AgentTask in the tier's ``notify_queue`` saying so;
- emits ``tier.adjustment`` for every customer of the tier who still holds a policy
  (journeys may enter on it), with deterministic event ids;
- records the adjustment (KeyValue ``tier_adjustment:<tier>``) and an audit-log entry.

A second review inside the same window finds the record and changes nothing, and the
task key and event ids are unique, so re-runs and concurrent runs stay idempotent.

Both are plain functions so the Prefect flows and the CLI call the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.language.durations import parse_duration
from engine.language.settings_model import TierConfig
from engine.loop.metrics import churn_by_tier, in_force_at, still_held, tier_at
from engine.loop.sqlfn import insert_ignoring_duplicates, seconds_between, table
from store.clock import as_utc, utcnow
from store.db import get_engine
from store.models import TIERS

customer_t = table("customer")
event_t = table("event")
task_t = table("agent_task")
kv_t = table("kv")
audit_t = table("audit_log")

SYSTEM_ACTOR = "system:tier-review"


# --- daily churn warnings -------------------------------------------------------------------------


@dataclass
class ChurnWarnings:
    at: datetime
    candidates: int = 0
    warned: int = 0  # events actually inserted (a re-run the same day inserts none)


def churn_warning_event_id(customer_external_id: str, at: datetime) -> str:
    return f"churn.warning:{customer_external_id}:{as_utc(at):%Y-%m-%d}"


def churn_warning_check(
    at: datetime | None = None,
    url: str | None = None,
    *,
    recent: timedelta = timedelta(days=30),
    baseline: timedelta = timedelta(days=60),
    drop_threshold: float = 0.5,
    quiet: timedelta = timedelta(days=90),
) -> ChurnWarnings:
    """Raise ``churn.warning`` for customers holding a policy whose activity fell.

    Activity is ``app.login`` events: the last ``recent`` (30 days) against the monthly
    rate of the ``baseline`` before it (days 31–90). A warning when
    - logins fell by ``drop_threshold`` (50%) or more from a baseline of at least one a
      month (``activity_drop`` = 1 − recent rate / baseline rate), or
    - the customer was active in the last 90 days (``last_active_at``) but not in the last 30.
    A customer warned within ``quiet`` (90 days) is not warned again: one drop-off, one warning.
    """
    at = as_utc(at) if at else utcnow()
    engine = get_engine(url)
    result = ChurnWarnings(at=at)
    recent_start, baseline_start = at - recent, at - recent - baseline
    with engine.begin() as conn:
        dialect = conn.dialect.name
        logins = (
            sa.select(
                event_t.c.customer_id,
                sa.func.sum(sa.case((event_t.c.occurred_at >= recent_start, 1), else_=0)).label("recent"),
                sa.func.sum(sa.case((event_t.c.occurred_at < recent_start, 1), else_=0)).label("prior"),
            )
            .where(
                event_t.c.type == "app.login", event_t.c.occurred_at >= baseline_start, event_t.c.occurred_at < at
            )
            .group_by(event_t.c.customer_id)
            .subquery()
        )
        c = customer_t
        recent_n = sa.func.coalesce(logins.c.recent, 0)
        prior_n = sa.func.coalesce(logins.c.prior, 0)
        # Per-30-day rates: the baseline spans ``baseline / recent`` periods of ``recent`` length.
        periods = baseline / recent
        dropped = (prior_n >= periods) & (recent_n * periods <= prior_n * (1 - drop_threshold))
        went_quiet = (c.c.last_active_at >= at - recent - baseline) & (c.c.last_active_at < recent_start)
        warned_lately = sa.exists().where(
            event_t.c.customer_id == c.c.id, event_t.c.type == "churn.warning", event_t.c.occurred_at >= at - quiet
        )
        at_col = sa.literal(at, c.c.created_at.type)
        rows = conn.execute(
            sa.select(
                c.c.id, c.c.external_id, recent_n.label("recent"), prior_n.label("prior"),
                (seconds_between(at_col, c.c.last_active_at, dialect) / 86400.0).label("days_inactive"),
            )
            .select_from(c.outerjoin(logins, logins.c.customer_id == c.c.id))
            .where(c.c.anonymised_at.is_(None), still_held(c.c.id), dropped | went_quiet, ~warned_lately)
            .order_by(c.c.id)
        ).all()
        result.candidates = len(rows)
        events = []
        for row in rows:
            drop = round(1 - (row.recent * periods) / row.prior, 2) if row.prior else 0.0
            days = int(row.days_inactive) if row.days_inactive is not None else None
            events.append({
                "external_id": churn_warning_event_id(row.external_id, at), "type": "churn.warning",
                "customer_id": row.id, "occurred_at": at, "received_at": utcnow(),
                "data": {
                    "activity_drop": drop, "days_inactive": days,
                    "risk": round(max(drop, min(1.0, (days or 0) / 90)), 2),
                },
            })
        result.warned = insert_ignoring_duplicates(conn, event_t, events)
    return result


# --- weekly tier review and dynamic adjustment -------------------------------------------------------


@dataclass
class TierReviewRow:
    tier: str
    in_force_at_start: int
    churned: int
    churn_rate: float | None
    over_threshold: bool
    adjusted: bool = False  # adjusted by this run
    already_adjusted: bool = False  # adjusted earlier in this review window
    journeys: list[str] = field(default_factory=list)
    task_id: int | None = None
    events: int = 0


@dataclass
class TierReview:
    at: datetime
    window_start: datetime
    threshold: float
    tiers: list[TierReviewRow]
    switched_off: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(), "window_start": self.window_start.isoformat(), "threshold": self.threshold,
            "tiers": [vars(row) for row in self.tiers], "switched_off": self.switched_off,
        }


def adjustment_key(tier: str) -> str:
    return f"tier_adjustment:{tier}"


def _kv_get(conn: sa.Connection, key: str) -> dict[str, Any] | None:
    value = conn.execute(sa.select(kv_t.c.value).where(kv_t.c.key == key)).scalar_one_or_none()
    return dict(value) if value is not None else None


def _kv_put(conn: sa.Connection, key: str, value: dict[str, Any], now: datetime) -> None:
    updated = conn.execute(sa.update(kv_t).where(kv_t.c.key == key).values(value=value, updated_at=now)).rowcount
    if not updated:
        conn.execute(sa.insert(kv_t).values(key=key, value=value, updated_at=now))


def _adjust(
    conn: sa.Connection, row: TierReviewRow, config: TierConfig, at: datetime, window_start: datetime
) -> None:
    resources = config.extra_resources.get(row.tier)
    journeys = list(resources.journeys) if resources else []
    queue = resources.notify_queue if resources else "ops"
    c = customer_t
    # The ops task needs a customer (tasks are per customer in the store and the console): it is
    # anchored on the most valuable customer of the tier lost in the window, a concrete first case.
    anchor = conn.execute(
        sa.select(c.c.id, c.c.external_id)
        .where(
            tier_at(c.c.id, c.c.tier, window_start) == row.tier,
            in_force_at(c.c.id, window_start.date()),
            ~still_held(c.c.id),
        )
        .order_by(c.c.tier_score.desc().nulls_last(), c.c.id)
        .limit(1)
    ).first()
    if anchor is None:  # cannot happen with churn above zero; be safe rather than fail the review
        return
    rate = row.churn_rate or 0.0
    note = (
        f"Tier {row.tier}: churn {rate:.1%} over the review window {window_start:%Y-%m-%d}..{at:%Y-%m-%d} "
        f"({row.churned} of {row.in_force_at_start}) exceeds {config.review.churn_threshold:.0%}. "
        f"Switched on: {', '.join(journeys) or 'no extra journeys configured'}. "
        f"Attached customer {anchor.external_id} is the most valuable customer of the tier lost in the window."
    )
    task_key = f"tier-adjustment:{row.tier}:{at:%Y-%m-%d}"
    inserted = insert_ignoring_duplicates(conn, task_t, [{
        "key": task_key, "customer_id": anchor.id, "journey_id": "tier-review", "journey_version": "monitoring",
        "step_id": "dynamic-adjustment", "occurrence": f"{row.tier}:{at:%Y-%m-%d}", "queue": queue, "priority": 1,
        "status": "open", "due_at": at + timedelta(days=1), "created_at": at, "notes": note, "attempt": 1,
        "escalated": False,
    }])
    if not inserted:  # a concurrent review did it first
        row.already_adjusted = True
        return
    row.task_id = conn.execute(sa.select(task_t.c.id).where(task_t.c.key == task_key)).scalar_one()
    for journey in journeys:
        _kv_put(conn, f"journey_enabled:{journey}", {
            "enabled": True, "by": "tier_adjustment", "tier": row.tier, "churn_rate": rate, "at": at.isoformat(),
        }, at)
    members = conn.execute(
        sa.select(c.c.id, c.c.external_id).where(
            c.c.tier == row.tier, c.c.anonymised_at.is_(None), still_held(c.c.id)
        )
    ).all()
    data = {"tier": row.tier, "churn_rate": rate, "journey": ",".join(journeys)}
    row.events = insert_ignoring_duplicates(conn, event_t, [
        {
            "external_id": f"tier.adjustment:{row.tier}:{at:%Y%m%d}:{m.external_id}", "type": "tier.adjustment",
            "customer_id": m.id, "occurred_at": at, "received_at": utcnow(), "data": data,
        }
        for m in members
    ])
    record = {
        "at": at.isoformat(), "window_start": window_start.isoformat(), "churn_rate": rate,
        "churned": row.churned, "in_force_at_start": row.in_force_at_start, "journeys": journeys,
        "task_id": row.task_id, "events": row.events, "queue": queue,
    }
    _kv_put(conn, adjustment_key(row.tier), record, at)
    conn.execute(sa.insert(audit_t).values(
        actor=SYSTEM_ACTOR, action="tier_adjustment", target_type="tier", target_id=row.tier, detail=record, at=at,
    ))
    row.adjusted, row.journeys = True, journeys


def run_tier_review(config: TierConfig | None = None, at: datetime | None = None, url: str | None = None) -> TierReview:
    """Churn per tier over the review window ending ``at``; dynamic adjustment where it crosses the threshold."""
    if config is None:
        from engine.language.settings_review import tier_settings

        config = tier_settings(get_engine(url))  # approved; a changed tiers.yaml waits for review
    at = as_utc(at) if at else utcnow()
    window = parse_duration(config.review.window)
    window_start = at - window
    threshold = config.review.churn_threshold
    figures = churn_by_tier(window_start, at, url=url)
    review = TierReview(at=at, window_start=window_start, threshold=threshold, tiers=[])
    engine = get_engine(url)
    with engine.begin() as conn:
        for tier in TIERS:
            f = figures.get(tier, {"in_force_at_start": 0, "churned": 0, "churn_rate": None})
            rate = f["churn_rate"]
            row = TierReviewRow(
                tier=tier, in_force_at_start=f["in_force_at_start"], churned=f["churned"], churn_rate=rate,
                over_threshold=rate is not None and rate > threshold,
            )
            review.tiers.append(row)
            last = _kv_get(conn, adjustment_key(tier))
            if row.over_threshold:
                if last and datetime.fromisoformat(last["at"]) + window > at:
                    row.already_adjusted = True
                    row.journeys, row.task_id = last.get("journeys", []), last.get("task_id")
                    continue
                _adjust(conn, row, config, at, window_start)
                continue
            # Back under the threshold: the extra journeys this review switched on go off again.
            resources = config.extra_resources.get(tier)
            for journey in resources.journeys if resources else []:
                key = f"journey_enabled:{journey}"
                current = _kv_get(conn, key)
                if current and current.get("enabled") and current.get("by") == "tier_adjustment":
                    _kv_put(conn, key, {
                        "enabled": False, "by": "tier_review", "tier": tier, "churn_rate": rate, "at": at.isoformat(),
                    }, at)
                    review.switched_off.append(journey)
    return review
