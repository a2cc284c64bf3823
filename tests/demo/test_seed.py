"""``journeys seed``: a deterministic, realistic synthetic book on a real SQLite file (and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import phonenumbers
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.demo.seeding import load_tier_config, score_customer, seed_book
from store.bulk_writer import CLAIM, CUSTOMER, POLICY, TIER_CHANGE
from store.clock import utcnow
from store.db import make_engine
from tests.db_support import count, rows

AS_OF = date(2026, 11, 22)
BOOK_COLUMNS = [c.name for c in CUSTOMER.c if c.name != "id"]


def _customers(url: str) -> list[tuple[object, ...]]:
    """The whole book's customers but their ids, by external id (the first of BOOK_COLUMNS)."""
    return rows(url, CUSTOMER, *BOOK_COLUMNS)


def test_same_size_and_seed_give_the_same_book(tmp_path: Path, db_url: str) -> None:
    from store.migrate import upgrade

    other = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other)
    seed_book(db_url, 300, seed=5, as_of=AS_OF, chunk_size=128)
    seed_book(other, 300, seed=5, as_of=AS_OF, chunk_size=1000)  # chunking must not matter
    assert _customers(db_url) == _customers(other)

    third = f"sqlite:///{tmp_path / 'third.db'}"
    upgrade(third)
    seed_book(third, 300, seed=6, as_of=AS_OF)
    assert [r[1] for r in _customers(third)] != [r[1] for r in _customers(db_url)]  # names differ


def test_seeding_again_continues_the_numbering_like_one_bigger_book(tmp_path: Path,
                                                                    db_url: str) -> None:
    from store.migrate import upgrade

    seed_book(db_url, 150, seed=9, as_of=AS_OF)
    second = seed_book(db_url, 100, seed=9, as_of=AS_OF)
    assert (second.first_number, second.last_number) == (151, 250)

    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    upgrade(whole)
    seed_book(whole, 250, seed=9, as_of=AS_OF)
    assert _customers(db_url) == _customers(whole)
    assert count(db_url, POLICY) == count(whole, POLICY)
    assert count(db_url, CLAIM) == count(whole, CLAIM)


def test_book_is_realistic(db_url: str) -> None:
    stats = seed_book(db_url, 5000, seed=1, as_of=AS_OF)
    assert stats.customers == 5000 and stats.tier_changes == 5000
    engine = make_engine(db_url)
    with engine.connect() as conn:
        customers = conn.execute(select(CUSTOMER)).all()
        policies = conn.execute(select(POLICY)).all()
        claims = conn.execute(select(CLAIM)).all()
        history = conn.execute(select(TIER_CHANGE)).all()
    engine.dispose()
    n = len(customers)

    # The programme's reference mix: about 62% in the mid segment (500–2000 yuan a year).
    premium: Counter[int] = Counter()
    for p in policies:
        if p.status == "active":
            premium[p.customer_id] += p.annual_premium
    mid = sum(1 for c in customers if 500 <= premium[c.id] <= 2000) / n
    assert 0.59 <= mid <= 0.65
    assert all(abs(c.attributes["annual_premium"] - premium[c.id]) < 0.05 for c in customers)

    # Every phone a valid mainland mobile in E.164; most customers have one.
    phones = [c.phone for c in customers if c.phone]
    assert len(phones) > 0.95 * n
    for phone in phones:
        parsed = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(parsed) and parsed.country_code == 86
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone

    assert any((c.birthday.month, c.birthday.day) == (2, 29) for c in customers if c.birthday)
    assert all(c.birth_md == c.birthday.month * 100 + c.birthday.day for c in customers)
    zones = Counter(c.timezone for c in customers)
    assert zones.most_common(1)[0][0] == "Asia/Shanghai" and zones["Asia/Shanghai"] > 0.85 * n
    assert {"Asia/Urumqi", "Asia/Hong_Kong", "America/Los_Angeles", "Europe/London"} <= set(zones)
    locales = Counter(c.locale for c in customers)
    assert locales["zh-CN"] > 0.85 * n and locales["en"] > 0
    assert len({c.branch for c in customers}) == 6
    assert all(1 < len(c.name) <= 4 for c in customers)  # Chinese names: surname + given name
    assert 0.2 * n < sum(1 for c in customers if c.email) < 0.8 * n
    assert sum(1 for c in customers if c.wechat_openid) > 0.6 * n

    # Consent with gaps, always with source and time when given, never for an unreachable channel.
    for channel, contact in (("sms", "phone"), ("wechat", "wechat_openid"), ("email", "email")):
        given = [c for c in customers if getattr(c, f"consent_{channel}")]
        assert 0 < len(given) < sum(1 for c in customers if getattr(c, contact))
        assert all(getattr(c, contact) and getattr(c, f"consent_{channel}_source") for c in given)
        assert all(getattr(c, f"consent_{channel}_at") is not None for c in given)
    assert all(
        set(c.preferred_channels) <= {ch for ch in ("sms", "wechat", "email") if getattr(c, f"consent_{ch}")}
        for c in customers
    )

    # Policies in every line, annual expiries spread over the coming year; claims, many settled.
    assert {p.product_line for p in policies} == {"motor", "health", "life", "property", "accident"}
    months = Counter(p.expiry_date.month for p in policies if p.status == "active" and p.product_line != "life")
    assert len(months) == 12 and min(months.values()) > 0.4 * max(months.values())
    assert any(p.status == "lapsed" for p in policies)
    statuses = Counter(c.status for c in claims)
    assert statuses["settled"] > statuses["filed"] > 0
    assert all(c.settled_at is None or c.settled_at >= c.filed_at for c in claims)

    # Premiums (issue M): a life policy pays on each anniversary or monthly on the day it started, a
    # short-term health policy paid monthly likewise until it expires; 60 days' grace; nothing else is due.
    due = [p for p in policies if p.premium_due_date is not None]
    assert {p.product_line for p in due} == {"life", "health"} and all(p.status == "active" for p in due)
    assert all(p.grace_period_end == p.premium_due_date + timedelta(days=60) for p in due)
    assert all(AS_OF < p.premium_due_date <= p.expiry_date for p in due)
    monthly = [p for p in due if p.premium_due_date <= AS_OF + timedelta(days=31)
               and (p.premium_due_date.month, p.premium_due_date.day) != (p.start_date.month, p.start_date.day)]
    assert all(p.premium_due_date.day == p.start_date.day or p.premium_due_date.day >= 28 for p in monthly)
    life = [p for p in policies if p.status == "active" and p.product_line == "life"]
    # In its last policy year a life policy owes nothing more.
    assert all(p.premium_due_date is not None for p in life if p.expiry_date > AS_OF + timedelta(days=366))
    yearly = [p for p in life if p.premium_due_date is not None and p not in monthly]
    assert all((p.premium_due_date.month, p.premium_due_date.day) == (p.start_date.month, p.start_date.day)
               or (p.start_date.month, p.start_date.day) == (2, 29) for p in yearly)
    assert 0.25 < len([p for p in life if p in monthly]) / len(life) < 0.45
    assert all(p.grace_period_end is None for p in policies if p.premium_due_date is None)

    # Tiers follow from the recorded inputs under config/tiers.yaml, with one seed history row each.
    config = load_tier_config()
    tiers = Counter(c.tier for c in customers)
    assert set(tiers) == {"diamond", "platinum", "gold", "silver", "potential"}
    assert tiers["diamond"] < tiers["platinum"] < tiers["gold"]
    for c in customers[:500]:
        tier, score, _ = score_customer(c.attributes, config, AS_OF)
        assert (c.tier, c.tier_score) == (tier, score)
    assert {h.reason for h in history} == {"seed"}
    assert sorted(h.customer_id for h in history) == sorted(c.id for c in customers)
    inputs = {"annual_premium", "policy_count", "tenure_years", "logins_90d", "session_minutes_90d", "replies_90d",
              "risk_questionnaire", "claims_count", "referrals", "community_participation", "age_band", "occupation",
              "region"}
    assert all(inputs <= set(c.attributes) for c in customers)


def test_retier_right_after_seeding_changes_no_tier(db_url: str) -> None:
    """The seeder scores with engine.loop.tier_model, from the figures retier reads back from the rows."""
    from datetime import UTC, datetime, time

    from engine.loop.retier import retier

    stats = seed_book(db_url, 3000, seed=3, as_of=AS_OF)
    result = retier(at=datetime.combine(AS_OF, time(2, 0), tzinfo=UTC), url=db_url)
    assert result.scored == 3000
    assert result.changed == 0, result.as_dict()
    assert dict(result.tiers) == dict(stats.tiers)


@pytest.mark.postgres
def test_seed_on_postgres_uses_the_sequences(pg_url: str) -> None:
    from store.migrate import upgrade

    upgrade(pg_url)
    stats = seed_book(pg_url, 400, seed=2, as_of=AS_OF, chunk_size=150)
    assert count(pg_url, CUSTOMER) == 400 and count(pg_url, POLICY) == stats.policies
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            # Ids came from the sequence, so an ordinary insert afterwards does not clash.
            conn.execute(CUSTOMER.insert().values(
                external_id="X1", name="测试", timezone="Asia/Shanghai", locale="zh-CN", branch="",
                consent_sms=False, consent_wechat=False, consent_email=False, preferred_channels=[],
                attributes={}, created_at=utcnow(), updated_at=utcnow(),
            ))
            first = conn.execute(select(CUSTOMER.c.attributes).where(CUSTOMER.c.external_id == "SEED-CUS000000001"))
            assert "annual_premium" in first.scalar_one()
    finally:
        engine.dispose()


def test_cli_seed_prints_a_summary_and_refuses_a_database_without_schema(db_url: str,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(build_app(), ["seed", "--customers", "50", "--seed", "4", "--as-of", "2026-11-22"])
    assert result.exit_code == 0, result.output
    assert "seeded 50 customers (SEED-CUS000000001..000000050)" in result.stdout
    assert count(db_url, CUSTOMER) == 50

    monkeypatch.setenv("JOURNEYS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = runner.invoke(build_app(), ["seed", "--customers", "5"])
    assert result.exit_code == 2
    assert "journeys db upgrade" in result.stderr
