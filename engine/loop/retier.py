"""Re-tiering in bulk (``journeys retier``): score every customer, record and announce the changes.

Customers are read in id-ordered chunks with their policy and claim figures
aggregated by SQL (GROUP BY per chunk), scored in memory, and written back with
one executemany per statement kind. Each chunk is one transaction, so a crash
leaves every customer either fully re-tiered (tier, history row, event) or
untouched, and a re-run picks up where it stopped: customers already in their
new tier are not changes any more.

Only changes produce a ``TierChange`` row (with the dimension scores that caused
it) and a ``tier.changed`` event. The event's external id is deterministic
(customer and run time), so a repeated run at the same ``--at`` cannot emit it twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.language.settings_model import TierConfig
from engine.loop.sqlfn import insert_ignoring_duplicates
from engine.loop.tables import claim_t, customer_t, event_t, policy_t, tier_change_t
from engine.loop.tier_model import ScoringInputs, score
from engine.planning.tier_moves import take_back_entries
from store.clock import as_utc, utcnow
from store.db import get_engine
from store.models import TIERS

# A renewed row is the term that ended; its renewal is a new active policy.
IN_FORCE_STATUS = "active"


@dataclass
class RetierResult:
    at: datetime
    scored: int = 0
    changed: int = 0
    up: int = 0
    down: int = 0
    initial: int = 0  # first tier ever given
    events: int = 0
    tiers: Counter[str] = field(default_factory=Counter)  # customers per tier after the run
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(), "scored": self.scored, "changed": self.changed, "up": self.up,
            "down": self.down, "initial": self.initial, "events": self.events,
            "tiers": {t: self.tiers.get(t, 0) for t in TIERS}, "dry_run": self.dry_run,
        }


def direction(from_tier: str | None, to_tier: str) -> str:
    """``up`` / ``down`` between tiers (diamond is the top), ``initial`` for a first tier."""
    if from_tier not in TIERS:
        return "initial"
    return "up" if TIERS.index(to_tier) < TIERS.index(from_tier) else "down"


def tier_changed_event_id(customer_external_id: str, at: datetime) -> str:
    return f"tier.changed:{customer_external_id}:{as_utc(at):%Y%m%dT%H%M%SZ}"


def _chunk_inputs(conn: sa.Connection, lo: int, hi: int) -> dict[int, dict[str, Any]]:
    """Policy and claim figures for customers with ids in [lo, hi], one GROUP BY each.

    A customer with policy rows gets stored figures (0 when none is in force); one
    without any keeps the copies in ``attributes`` (e.g. imported without policies).
    """
    in_force = policy_t.c.status == IN_FORCE_STATUS
    policy_rows = conn.execute(
        sa.select(
            policy_t.c.customer_id,
            sa.func.coalesce(sa.func.sum(sa.case((in_force, policy_t.c.annual_premium), else_=0.0)), 0.0),
            sa.func.count(sa.case((in_force, policy_t.c.id))),
            sa.func.count(sa.distinct(sa.case((in_force, policy_t.c.product_line)))),
            sa.func.min(policy_t.c.start_date),
        )
        .where(policy_t.c.customer_id.between(lo, hi))
        .group_by(policy_t.c.customer_id)
    ).all()
    claim_rows = conn.execute(
        sa.select(claim_t.c.customer_id, sa.func.count())
        .where(claim_t.c.customer_id.between(lo, hi))
        .group_by(claim_t.c.customer_id)
    ).all()
    out: dict[int, dict[str, Any]] = {}
    for cid, premium, count, lines, first in policy_rows:
        out[cid] = {
            "annual_premium": round(float(premium or 0), 2), "policy_count": int(count or 0),
            "product_lines": int(lines or 0), "first_policy_start": first,
        }
    for cid, claims in claim_rows:
        out.setdefault(cid, {})["claims_count"] = int(claims)
    return out


def retier(
    config: TierConfig | None = None,
    at: datetime | None = None,
    url: str | None = None,
    chunk_size: int = 2000,
    dry_run: bool = False,
) -> RetierResult:
    """Score every live customer at ``at`` (default now) and apply tier changes; see the module doc."""
    engine = get_engine(url)
    if config is None:
        from engine.language.settings_review import tier_settings

        config = tier_settings(engine, write=not dry_run)  # approved; a changed tiers.yaml waits for review
    at = as_utc(at) if at else utcnow()
    today = at.date()
    result = RetierResult(at=at, dry_run=dry_run)
    last_id = 0
    while True:
        with engine.begin() as conn:
            customers = conn.execute(
                sa.select(
                    customer_t.c.id, customer_t.c.external_id, customer_t.c.tier, customer_t.c.tier_score,
                    customer_t.c.attributes,
                )
                .where(customer_t.c.id > last_id, customer_t.c.anonymised_at.is_(None))
                .order_by(customer_t.c.id)
                .limit(chunk_size)
            ).all()
            if not customers:
                break
            last_id = customers[-1].id
            aggregates = _chunk_inputs(conn, customers[0].id, last_id)

            score_updates: list[dict[str, Any]] = []
            tier_updates: list[dict[str, Any]] = []
            history: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for row in customers:
                inputs = ScoringInputs(attributes=row.attributes or {}, **aggregates.get(row.id, {}))
                new = score(inputs, config, today)
                result.scored += 1
                result.tiers[new.tier] += 1
                if new.tier == row.tier:
                    if row.tier_score is None or abs(row.tier_score - new.score) > 1e-9:
                        score_updates.append({"cid": row.id, "new_score": new.score})
                    continue
                move = direction(row.tier, new.tier)
                result.changed += 1
                setattr(result, move, getattr(result, move) + 1)
                tier_updates.append({"cid": row.id, "new_tier": new.tier, "new_score": new.score, "moved_at": at})
                history.append({
                    "customer_id": row.id, "from_tier": row.tier, "to_tier": new.tier, "score": new.score,
                    "dimensions": new.dimensions, "reason": "retier", "changed_at": at,
                })
                events.append({
                    "external_id": tier_changed_event_id(row.external_id, at), "type": "tier.changed",
                    "customer_id": row.id, "occurred_at": at, "received_at": utcnow(),
                    "data": {"from_tier": row.tier, "to_tier": new.tier, "direction": move, "score": new.score},
                })
            if dry_run:
                continue
            if score_updates:
                conn.execute(
                    sa.update(customer_t)
                    .where(customer_t.c.id == sa.bindparam("cid"))
                    .values(tier_score=sa.bindparam("new_score")),
                    score_updates,
                )
            if tier_updates:
                conn.execute(
                    sa.update(customer_t)
                    .where(customer_t.c.id == sa.bindparam("cid"))
                    .values(
                        tier=sa.bindparam("new_tier"), tier_score=sa.bindparam("new_score"),
                        tier_updated_at=sa.bindparam("moved_at"),
                    ),
                    tier_updates,
                )
                conn.execute(sa.insert(tier_change_t), history)
                result.events += insert_ignoring_duplicates(conn, event_t, events)
                # What runs planned ahead under the old tiers is judged again under the new ones.
                take_back_entries(conn, [u["cid"] for u in tier_updates], at)
    return result
