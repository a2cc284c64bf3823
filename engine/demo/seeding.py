"""``journeys seed``: a deterministic, realistic synthetic book of customers, policies and claims.

Seeding a database that already holds a seeded book **adds** to it: customer numbers
(external ids ``SEED-CUS000000001``, …) continue after the highest one present, and
customer ``k`` depends only on the seed and ``k`` (see ``engine.demo.book``), so
seeding 1,000 and then 1,000 more with the same seed gives the same book as seeding
2,000 at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection, Engine

from engine.demo.book import CUSTOMER_PREFIX, BookGenerator, CustomerDraft
from engine.demo.scoring import score_customer, scoring_inputs
from engine.language.paths import tiers_config_path
from engine.language.settings_model import TierConfig
from engine.language.validation import load_config
from store.bulk_writer import CLAIM, CUSTOMER, POLICY, TIER_CHANGE, reserve_ids, write_rows
from store.clock import utcnow
from store.db import make_engine

__all__ = [
    "SeedError",
    "SeedStats",
    "load_tier_config",
    "score_customer",
    "scoring_inputs",
    "seed_book",
]

DEFAULT_CHUNK = 5000


class SeedError(RuntimeError):
    """The book cannot be seeded (no schema, bad tier configuration, bad arguments)."""


@dataclass
class SeedStats:
    customers: int = 0
    policies: int = 0
    claims: int = 0
    tier_changes: int = 0
    first_number: int = 0
    last_number: int = 0
    seconds: float = 0.0
    tiers: Counter[str] = field(default_factory=Counter)
    segments: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return self.customers + self.policies + self.claims + self.tier_changes


def load_tier_config(path: Path | None = None) -> TierConfig:
    config, problems = load_config(TierConfig, path or tiers_config_path())
    if config is None:
        raise SeedError("tier configuration is invalid:\n" + "\n".join(str(p) for p in problems))
    return config


def next_seed_number(engine: Engine) -> int:
    """The first customer number not yet used by a seeded book."""
    with engine.connect() as conn:
        highest = conn.execute(
            select(func.max(CUSTOMER.c.external_id)).where(CUSTOMER.c.external_id.like(f"{CUSTOMER_PREFIX}%"))
        ).scalar_one_or_none()
    if not highest:
        return 1
    try:
        return int(highest[len(CUSTOMER_PREFIX) :]) + 1
    except ValueError:
        raise SeedError(f"cannot continue the seeded book: unexpected external id {highest!r}") from None


def seed_book(
    url: str,
    customers: int,
    seed: int = 0,
    *,
    as_of: date | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    tiers: TierConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedStats:
    """Add ``customers`` synthetic customers (with policies, claims, tiers) to the database at ``url``.

    ``progress`` is called with the number of customers written after each chunk.
    """
    if customers < 0:
        raise SeedError("the number of customers must be >= 0")
    if seed < 0:
        raise SeedError("the seed must be >= 0")
    if chunk_size < 1:
        raise SeedError("chunk size must be >= 1")
    config = tiers or load_tier_config()
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        if not inspect(engine).has_table(CUSTOMER.name):
            raise SeedError("the database has no schema yet: run `journeys db upgrade` first")
        first = next_seed_number(engine)
        generator = BookGenerator(seed, as_of or utcnow().date(), config)
        stats = SeedStats(first_number=first, last_number=first + customers - 1)
        for start in range(first, first + customers, chunk_size):
            end = min(start + chunk_size, first + customers)
            drafts = [generator.customer(k) for k in range(start, end)]
            with engine.begin() as conn:
                _write_chunk(conn, drafts, stats)
            if progress:
                progress(len(drafts))
        stats.seconds = time.perf_counter() - started
        return stats
    finally:
        engine.dispose()


def _write_chunk(conn: Connection, drafts: list[CustomerDraft], stats: SeedStats) -> None:

    customer_ids = reserve_ids(conn, CUSTOMER, len(drafts))
    policy_ids = iter(reserve_ids(conn, POLICY, sum(len(d.policies) for d in drafts)))
    customer_rows, policy_rows, claim_rows, tier_rows = [], [], [], []
    for draft, customer_id in zip(drafts, customer_ids, strict=True):
        customer_rows.append({"id": customer_id, **draft.customer})
        ids = []
        for policy in draft.policies:
            policy_id = next(policy_ids)
            ids.append(policy_id)
            policy_rows.append({"id": policy_id, "customer_id": customer_id, **policy})
        for claim in draft.claims:
            row = {k: v for k, v in claim.items() if k != "_policy"}
            claim_rows.append({"customer_id": customer_id, "policy_id": ids[claim["_policy"]], **row})
        tier_rows.append({"customer_id": customer_id, **draft.tier_change})
        stats.tiers[draft.customer["tier"]] += 1
        stats.segments[draft.segment] += 1
    write_rows(conn, CUSTOMER, customer_rows)
    write_rows(conn, POLICY, policy_rows)
    write_rows(conn, CLAIM, claim_rows)
    write_rows(conn, TIER_CHANGE, tier_rows)
    stats.customers += len(customer_rows)
    stats.policies += len(policy_rows)
    stats.claims += len(claim_rows)
    stats.tier_changes += len(tier_rows)
