"""The simulated world of the demo month: the clock, the customers and what they do.

Customers log in, complain, file and settle claims, answer what was delivered to them (opt-outs,
survey scores, ordinary replies) and renew or let policies lapse, all through the product's own
entry points (``engine.loop.events.emit_event``, the providers' inbound callbacks) at the
simulated time. Nothing here prints a customer's phone number, openid or ID number.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.demo.providers import Providers

LOCAL_TZ = "Asia/Shanghai"

# Daily chances per customer (a 3,000-customer book: ~90 logins, ~2 complaints, ~4 claims a day).
LOGIN_RATE = {"diamond": 0.08, "platinum": 0.06, "gold": 0.04, "silver": 0.025, "potential": 0.012}
COMPLAINT_RATE = 0.0008
CLAIM_RATE = 0.0015
# Reactions to a delivered SMS/WeChat message.
OPT_OUT_RATE = 0.012
REPLY_RATE = 0.04
SURVEY_ANSWER_RATE = 0.45
# Renewal at expiry, by tier (the programme's baseline mix; an agent's "renewal_yes" makes it certain).
RENEWAL_RATE = {"diamond": 0.93, "platinum": 0.9, "gold": 0.86, "silver": 0.8, "potential": 0.68}
# Share of premiums debited on their due date; the others go into the grace period (reminded, called).
PREMIUM_PAID_RATE = 0.85


@dataclass
class DayStats:
    """What happened on a simulated day: printed per day, summed for the month's result."""

    planned: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    events: int = 0
    replies: int = 0
    opt_outs: int = 0
    survey_answers: int = 0
    tasks_created: int = 0
    tasks_done: int = 0
    tasks_late: int = 0
    churn_warnings: int = 0
    renewed: int = 0
    lapsed: int = 0
    receipts: Counter[str] = field(default_factory=Counter)

    def add(self, other: DayStats) -> None:
        for name in ("planned", "sent", "delivered", "failed", "events", "replies", "opt_outs", "survey_answers",
                     "tasks_created", "tasks_done", "tasks_late", "churn_warnings", "renewed", "lapsed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.receipts.update(other.receipts)


def local_zone() -> Any:
    """The demo's local time zone: the simulated day, the agents' shift and the report run on it."""
    from store.clock import zone

    return zone(LOCAL_TZ)


def local_moment(day: date, at: time) -> datetime:
    """``day`` at local time ``at`` (Asia/Shanghai) as aware UTC."""
    return datetime.combine(day, at, tzinfo=local_zone()).astimezone(UTC)


class SimClock:
    """The simulated time; ``store.clock.simulated_time(clock)`` makes ``utcnow()`` answer it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Events:
    """Customer events through ``engine.loop.events.emit_event``, as other systems send them."""

    def __init__(self, db_url: str, clock: SimClock) -> None:
        self.db_url = db_url
        self.clock = clock

    def emit(self, type_: str, external_id: str, data: dict[str, Any], event_id: str, at: datetime) -> None:
        # The event is received as it happens: emit_event acts on it up to "now".
        self.clock.now = max(self.clock.now, at)
        from engine.loop.events import emit_event

        emit_event(type_, external_id, data, event_id=event_id, occurred_at=at, url=self.db_url)


@dataclass(frozen=True)
class Person:
    """What the simulation needs of a customer (held in memory only; never printed)."""

    id: int
    external_id: str
    tier: str
    phone: str | None
    openid: str | None


class Book:
    """The live customers, re-read after the weekly retier so behaviour follows the new tiers."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.people: dict[int, Person] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read tiers (the weekly retier moves people)."""
        import sqlalchemy as sa
        from sqlmodel import col

        from store.db import session_scope
        from store.models import Customer

        with session_scope(self.db_url) as session:
            rows = session.execute(
                sa.select(col(Customer.id), col(Customer.external_id), col(Customer.tier), col(Customer.phone),
                          col(Customer.wechat_openid))
                .where(col(Customer.anonymised_at).is_(None)).order_by(col(Customer.id))
            ).all()
        self.people = {int(i): Person(int(i), ext, tier or "potential", phone, openid)
                       for i, ext, tier, phone, openid in rows if i is not None}

    def unreachable(self, rng: random.Random, providers: Providers) -> None:
        """A few percent of numbers and WeChat followers cannot be reached: fallback and failures show."""
        phones: dict[str, tuple[str, int | None]] = {}
        send_errors: dict[str, int] = {}
        unsubscribed: set[str] = set()
        blocked: set[str] = set()
        for person in self.people.values():
            if person.phone:
                r = rng.random()
                if r < 0.015:
                    phones[person.phone] = ("undelivered", 30003)  # handset unreachable: permanent
                elif r < 0.025:
                    phones[person.phone] = ("undelivered", 30001)  # queue overflow: not permanent
                elif r < 0.03:
                    send_errors[person.phone] = 21614  # not a mobile number: refused at send
            if person.openid:
                r = rng.random()
                if r < 0.03:
                    unsubscribed.add(person.openid)  # unfollowed the account: 43004 at send
                elif r < 0.04:
                    blocked.add(person.openid)  # blocked the account: failed:user block receipt
        providers.set_failures(phones, send_errors, unsubscribed, blocked)


def _utc_param(moment: datetime) -> Any:
    """A datetime bound the way the store writes it (UTCDateTime), so SQLite compares like with like."""
    from sqlalchemy import bindparam
    from sqlmodel.sql.sqltypes import UTCDateTime

    return bindparam("m", moment, type_=UTCDateTime())


class World:
    """Customers doing things: logging in, complaining, claiming, replying, renewing."""

    def __init__(self, db_url: str, book: Book, events: Events, providers: Providers, rng: random.Random) -> None:
        self.db_url = db_url
        self.book = book
        self.events = events
        self.providers = providers
        self.rng = rng
        # Replies draw from a stream of their own: how many messages were delivered (which any change
        # to sending or templates moves) must not shift who logs in, complains or claims afterwards.
        self.reply_rng = random.Random(rng.getrandbits(64))  # nosec B311 # the seeded demo's replies
        self.claim_seq = 0
        self.pending_settlements: list[tuple[datetime, int, str, str, float]] = []  # (when, claim id, ...)
        self.pending_events: list[tuple[datetime, str, str, dict[str, Any], str]] = []
        self.renewal_intent: dict[int, bool] = {}

    # -- events between two ticks ------------------------------------------------------------------
    def _moment(self, start: datetime, end: datetime) -> datetime:
        span = (end - start).total_seconds()
        return start + timedelta(seconds=int(self.rng.random() * span))

    def customer_events(self, start: datetime, end: datetime, share: float) -> int:
        """Logins, complaints and small claims in ``(start, end]``, emitted in time order; ``share`` is this
        window's part of a day."""
        rng = self.rng
        due: list[tuple[datetime, str, str, dict[str, Any], str]] = []
        claims: list[tuple[datetime, Person]] = []
        for person in self.book.people.values():
            if rng.random() < LOGIN_RATE.get(person.tier, 0.02) * share:
                at = self._moment(start, end)
                due.append((at, "app.login", person.external_id,
                            {"platform": rng.choice(("ios", "android", "web")),
                             "session_seconds": int(rng.expovariate(1 / 240))},
                            f"demo:app.login:{person.id}:{at:%Y%m%d%H%M%S}"))
            if rng.random() < COMPLAINT_RATE * share:
                at = self._moment(start, end)
                due.append((at, "complaint.filed", person.external_id,
                            {"category": rng.choice(("claims", "service", "billing", "advisor")),
                             "severity": rng.choice(("normal", "normal", "high")), "source": "hotline",
                             "text": "客户来电投诉（演示数据）"},
                            f"demo:complaint:{person.id}:{at:%Y%m%d%H%M%S}"))
            if rng.random() < CLAIM_RATE * share:
                claims.append((self._moment(start, end), person))
        for at, person in claims:
            filed = self._file_claim(person, at)
            if filed is not None:
                due.append(filed)
        due.extend(e for e in self.pending_events if e[0] <= end)
        self.pending_events = [e for e in self.pending_events if e[0] > end]
        for at, type_, external_id, data, event_id in sorted(due, key=lambda e: (e[0], e[4])):
            self.events.emit(type_, external_id, data, event_id, at)
        return len(due)

    def _file_claim(self, person: Person, at: datetime) -> tuple[datetime, str, str, dict[str, Any], str] | None:
        """The claims system files a claim (a row in the store); its ``claim.filed`` event is returned."""
        from sqlmodel import col, select

        from store.db import session_scope
        from store.models import Claim, Policy

        with session_scope(self.db_url) as session:
            policy = session.exec(
                select(Policy).where(Policy.customer_id == person.id, Policy.status == "active")
                .order_by(col(Policy.id))
            ).first()
            if policy is None:
                return None
            self.claim_seq += 1
            amount = round(min(200_000.0, self.rng.lognormvariate(7.6, 1.0)), 2)  # median ~2,000 yuan
            claim = Claim(external_id=f"DEMO-CLM{self.claim_seq:07d}", customer_id=person.id, policy_id=policy.id,
                          filed_at=at, amount=amount, status="filed")
            session.add(claim)
            session.flush()
            claim_id, line, claim_ext = int(claim.id or 0), policy.product_line, claim.external_id
        settle = at + timedelta(days=self.rng.randint(2, 12), hours=self.rng.randint(0, 6))
        self.pending_settlements.append((settle, claim_id, person.external_id, claim_ext, amount))
        return (at, "claim.filed", person.external_id,
                {"claim_id": claim_ext, "amount": amount, "product_line": line}, f"demo:claim.filed:{claim_ext}")

    def settle_claims(self, until: datetime) -> int:
        from sqlalchemy import update
        from sqlmodel import col

        from store.db import session_scope
        from store.models import Claim

        due = sorted(s for s in self.pending_settlements if s[0] <= until)
        self.pending_settlements = [s for s in self.pending_settlements if s[0] > until]
        for at, claim_id, external_id, claim_ext, amount in due:
            with session_scope(self.db_url) as session:
                session.execute(update(Claim).where(col(Claim.id) == claim_id)
                                .values(status="settled", settled_at=at))
            self.events.emit("claim.settled", external_id, {"claim_id": claim_ext, "amount": amount},
                             f"demo:claim.settled:{claim_ext}", at)
        return len(due)

    def later(self, at: datetime, type_: str, external_id: str, data: dict[str, Any], event_id: str) -> None:
        """An event that happens after the moment that caused it (emitted when the clock gets there)."""
        self.pending_events.append((at, type_, external_id, data, event_id))

    # -- replies to what was delivered ---------------------------------------------------------------
    def replies(self, delivered_since: datetime, at: datetime, stats: DayStats) -> None:
        from sqlalchemy import text

        from store.db import get_engine

        with get_engine(self.db_url).connect() as conn:
            rows = conn.execute(
                text("SELECT customer_id, channel, template FROM touch WHERE status = 'delivered' "
                     "AND channel IN ('sms', 'wechat') AND delivered_at >= :m ORDER BY id")
                .bindparams(_utc_param(delivered_since))
            ).all()
        sms: list[tuple[str, str]] = []
        wechat: list[tuple[str, str]] = []
        rng = self.reply_rng
        for customer_id, channel, template in rows:
            person = self.book.people.get(int(customer_id))
            address = None if person is None else (person.phone if channel == "sms" else person.openid)
            if address is None:
                continue
            survey = "nps" in template.lower() or "survey" in template.lower()
            r = rng.random()
            if r < OPT_OUT_RATE:
                body = rng.choice(("TD", "退订", "td"))
                stats.opt_outs += 1
            elif survey and r < OPT_OUT_RATE + SURVEY_ANSWER_RATE:
                body = str(rng.choices(range(11), weights=(2, 1, 1, 2, 2, 4, 6, 12, 18, 24, 28))[0])
                stats.survey_answers += 1
            elif r < OPT_OUT_RATE + REPLY_RATE:
                body = rng.choice(("好的，谢谢", "收到", "请顾问给我回个电话", "谢谢提醒", "OK"))
            else:
                continue
            stats.replies += 1
            (sms if channel == "sms" else wechat).append((address, body))
        if sms or wechat:
            self.providers.inject_replies(sms, wechat)
            stats.receipts.update(self.providers.replay(at))

    # -- policies at expiry ----------------------------------------------------------------------------
    def policies_at_expiry(self, day: date, at: datetime, stats: DayStats) -> None:
        """The policy system's day-end: each active policy expiring today is renewed or lapses."""
        from sqlmodel import col, select

        from store.db import session_scope
        from store.models import Policy

        with session_scope(self.db_url) as session:
            policies = session.exec(
                select(Policy).where(Policy.expiry_date == day, Policy.status == "active").order_by(col(Policy.id))
            ).all()
            changes: list[tuple[str, str, str]] = []
            for policy in policies:
                person = self.book.people.get(policy.customer_id)
                if person is None:
                    continue
                intent = self.renewal_intent.get(policy.customer_id)
                rate = 0.98 if intent else 0.35 if intent is False else RENEWAL_RATE.get(person.tier, 0.8)
                renewed = self.rng.random() < rate
                policy.status = "renewed" if renewed else "lapsed"
                session.add(policy)
                changes.append((person.external_id, policy.external_id, policy.status))
        for external_id, policy_ext, status in changes:
            type_ = "policy.renewed" if status == "renewed" else "policy.lapsed"
            self.events.emit(type_, external_id, {"policy_id": policy_ext}, f"demo:{type_}:{policy_ext}", at)
            stats.events += 1
            if status == "renewed":
                stats.renewed += 1
            else:
                stats.lapsed += 1

    # -- premiums on their due date -----------------------------------------------------------------
    def premiums_due(self, day: date, at: datetime, stats: DayStats) -> None:
        """The billing system's day-end: most premiums due today are debited (policy.premium_paid);
        the rest stay unpaid into their grace period. Decided per policy and due date from a digest,
        not the world's random stream, so that everything else the month does stays as it was."""
        import hashlib

        from sqlmodel import col, select

        from store.db import session_scope
        from store.models import Policy

        with session_scope(self.db_url) as session:
            due = session.exec(
                select(Policy).where(Policy.premium_due_date == day, Policy.status == "active")
                .order_by(col(Policy.id))
            ).all()
            paid = [(p.customer_id, p.external_id) for p in due
                    if hashlib.sha256(f"paid:{p.external_id}:{day}".encode()).digest()[0] < 256 * PREMIUM_PAID_RATE]
        for customer_id, policy_ext in paid:
            person = self.book.people.get(customer_id)
            if person is None:
                continue
            self.events.emit("policy.premium_paid", person.external_id,
                             {"policy_id": policy_ext, "due_date": day.isoformat()},
                             f"demo:policy.premium_paid:{policy_ext}:{day}", at)
            stats.events += 1
