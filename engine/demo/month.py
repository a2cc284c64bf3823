"""``journeys demo``: a simulated month of the whole product on the embedded default, in one command.

What runs is the product itself, on a clock that the demo advances day by day:

1. a fresh SQLite database under the out directory (the old one is deleted), migrations,
   N seeded customers (``engine.demo.seeding.seed_book``), a few agents and a supervisor;
2. local provider stand-ins started in-process: Twilio and WeChat (``standins``, real HTTP,
   signed status callbacks) and an SMTP server; their callbacks go to a ``WebhookSink`` and
   are replayed into the real receipt handlers (``engine.loop.receipts``) with the simulated
   time, because Twilio's callbacks carry no timestamp of their own;
3. every simulated day (local time, Asia/Shanghai): Mondays the retier and the tier review,
   06:00 the churn check, then the planner through the day's window (``engine.planning.planner.plan``
   at 06:05 and before each dispatch, each time for what fell due since the last run);
   every hour 08:00–20:00 customer events through ``emit_event`` (app logins, complaints,
   small claims and their settlement, post-call CSAT answers) and agents working their tasks
   through ``console.tasks`` (assignment, escalation, claim, complete with a mix of outcomes,
   some after the SLA); six times a day the Prefect dispatch flow (``engine.runtime.flows``: batch
   tasks on Prefect's local engine), delivery receipts, and customer replies through the
   stand-ins' inbound injection (opt-outs "TD", digits answering the NPS survey, ordinary
   replies); at day end, policies expiring that day are renewed or lapse;
4. the report for the period: the per-tier summary (``engine.loop.reports.tier_summary``) as a
   Rich table, a line of totals, PNG charts (``engine.loop.charts``) and ``summary.json``.

The simulated time drives everything: it is passed as ``now``/``at`` wherever a part takes it,
and ``store.clock.simulated_time`` covers the rows parts stamp with ``utcnow()`` themselves
(the planner's ``created_at``, ``emit_event``'s horizon).

Nothing here prints or logs a phone number, e-mail address or ID number: the output is
counts, and the log file (``demo.log``) goes through the masking filter.

Deliberately not simulated: the console's web pages (the task service under them is what
the agents use) and PostgreSQL (the demo is the embedded default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import shutil
import sys
import threading
import time as wallclock
from collections import Counter
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from store.masking import MaskingFilter, install_masking_filter

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OUT = Path("var") / "demo"
DB_NAME = "demo.db"
LOG_NAME = "demo.log"
PREFECT_DIR = ".prefect"
LOCAL_TZ = "Asia/Shanghai"
TIERS = ("diamond", "platinum", "gold", "silver", "potential")

# The simulated working day, local time: every hour customer events happen and the agents work
# (at half past); at the DISPATCH_AT hours the dispatch flow runs, receipts come back and customers
# reply. Quiet hours (21:00–08:00) hold sends until the morning anyway. Fewer dispatch runs than
# the service's every-5-seconds keep the month to a few minutes: a touch waits for the next one.
HOURS = tuple(time(h, 0) for h in range(8, 21))
DISPATCH_AT = frozenset({time(8, 0), time(10, 0), time(12, 0), time(14, 0), time(17, 0), time(20, 0)})
CHURN_CHECK_AT = time(6, 0)  # as the embedded service schedules them (engine.runtime.service)
PLAN_AT = time(6, 5)  # the day's plan, after the churn check
RETIER_AT = time(3, 0)
REVIEW_AT = time(4, 0)
DAY_END = time(23, 30)

# Daily chances per customer (a 3,000-customer book: ~90 logins, ~2 complaints, ~4 claims a day).
LOGIN_RATE = {"diamond": 0.08, "platinum": 0.06, "gold": 0.04, "silver": 0.025, "potential": 0.012}
COMPLAINT_RATE = 0.0008
CLAIM_RATE = 0.0015
# Reactions to a delivered SMS/WeChat message.
OPT_OUT_RATE = 0.012
REPLY_RATE = 0.04
SURVEY_ANSWER_RATE = 0.45
CSAT_AFTER_TASK_RATE = 0.3
# Renewal at expiry, by tier (the programme's baseline mix; an agent's "renewal_yes" makes it certain).
RENEWAL_RATE = {"diamond": 0.93, "platinum": 0.9, "gold": 0.86, "silver": 0.8, "potential": 0.68}
# Share of tasks an agent only gets to after the SLA has passed.
LATE_SHARE = 0.12


class DemoError(RuntimeError):
    """The demo cannot run (bad arguments, a part of the product missing or broken)."""


@dataclass(frozen=True)
class DemoSettings:
    customers: int = 3000
    days: int = 30
    seed: int = 0
    start: date | None = None  # default: the 1st of the previous month
    out_dir: Path = DEFAULT_OUT

    def start_date(self, today: date | None = None) -> date:
        if self.start is not None:
            return self.start
        today = today or datetime.now(UTC).date()
        first = today.replace(day=1)
        return (first - timedelta(days=1)).replace(day=1)


@dataclass
class DayStats:
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


@dataclass
class DemoResult:
    start: datetime
    end: datetime
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    stats: DayStats
    charts: list[Path]
    database: Path
    log_file: Path
    provider_duplicates: dict[str, dict[str, int]]
    planner: str
    seconds: float
    # The full §8 report for the period (every metric by tier), printed after the summary.
    report: dict[str, Any] | None = None


# --- clock ---------------------------------------------------------------------------------------


def local_moment(day: date, at: time) -> datetime:
    """``day`` at local time ``at`` (Asia/Shanghai) as aware UTC."""
    from store.clock import zone

    return datetime.combine(day, at, tzinfo=zone(LOCAL_TZ)).astimezone(UTC)


# --- environment ---------------------------------------------------------------------------------


def _fresh_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir``; remove only what an earlier demo run left there (its database, log, Prefect home)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOG_NAME, "summary.json"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / PREFECT_DIR, ignore_errors=True)
    return out_dir / DB_NAME


def _quiet_prefect(out_dir: Path) -> None:
    """Prefect reads these when it is first imported: set them before anything imports it."""
    os.environ["PREFECT_HOME"] = str((out_dir / PREFECT_DIR).resolve())
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # The embedded default: Prefect's ephemeral local API, never a server configured for scale-out.
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@contextmanager
def _log_to_file(path: Path) -> Iterator[None]:
    """INFO and above of the product's loggers into ``path``, masked; the terminal keeps its level."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    previous = root.level
    # The terminal's handlers keep showing what they showed before (WARNING by default).
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(previous)
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO))
    # aiohttp and httpx would log every request at INFO: nothing to learn from them here. The SMTP
    # stand-in's library (aiosmtpd, logger "mail.log") warns about its own deprecations on every login.
    for noisy in ("httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def _mask_prefect_handlers() -> None:
    """Prefect installs its own handlers (not the root's): put the masking filter on them too."""
    for name in list(logging.root.manager.loggerDict):
        if name == "prefect" or name.startswith("prefect."):
            logger = logging.getLogger(name)
            if logger.handlers:
                install_masking_filter(logger)


# --- providers -----------------------------------------------------------------------------------


class _LoopThread:
    """An event loop in a daemon thread: the webhook sink must answer while the main thread works."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _gather(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    return list(await asyncio.gather(*coros))


class Providers:
    """The stand-ins and the sink their callbacks go to; ``replay`` feeds those callbacks to our handlers."""

    SMS_SENDER = "106900000000"  # the number customers reply to (a service short code, no person's number)

    def __init__(self, db_url: str, out_dir: Path) -> None:
        from standins.sink import WebhookSink
        from standins.smtp_server import SmtpStandin
        from standins.twilio_api import TwilioStandin
        from standins.wechat_api import WeChatStandin

        self.db_url = db_url
        self._sink_loop = _LoopThread("demo-webhook-sink")
        self.sink = WebhookSink()
        self._sink_loop.run(self.sink.start())
        base = self.sink.base_url
        # Secrets made up per run: the stand-ins and our handlers share them through this process only.
        self.twilio = TwilioStandin(
            account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16),
            inbound_url=f"{base}/hooks/twilio/inbound",
        )
        self.wechat = WeChatStandin(
            appid="wx" + secrets.token_hex(8), secret=secrets.token_hex(16),
            callback_url=f"{base}/hooks/wechat", callback_token=secrets.token_hex(12),
        )
        # STARTTLS with AUTH, as a real relay wants; its certificate is made up at start-up.
        self.smtp = SmtpStandin(username="journeys-demo", password=secrets.token_hex(12), starttls=True)
        self._replayed = 0
        self.twilio.start()
        self.wechat.start()
        self.smtp.start()
        # The adapter trusts the stand-in's self-signed certificate through SMTP_CA_FILE (a public certificate).
        self.smtp_ca = out_dir / "smtp-standin-ca.pem"
        self.smtp_ca.write_bytes(self.smtp.cert_pem or b"")

    def env(self) -> dict[str, str]:
        """The channel configuration (``channels.registry``) pointing at the stand-ins."""
        return {
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
            "TWILIO_API_BASE": self.twilio.base_url,
            "WECHAT_APPID": self.wechat.appid,
            "WECHAT_SECRET": self.wechat.secret,
            "WECHAT_API_BASE": self.wechat.base_url,
            "WECHAT_TOKEN": self.wechat.callback_token,
            "SMTP_HOST": self.smtp.host,
            "SMTP_PORT": str(self.smtp.port),
            "SMTP_USER": self.smtp.username or "",
            "SMTP_PASSWORD": self.smtp.password or "",
            "SMTP_STARTTLS": "true",
            "SMTP_CA_FILE": str(self.smtp_ca.resolve()),
            "EMAIL_FROM": "service@journeys-demo.invalid",
            # Where status callbacks are addressed (dispatch adds /hooks/twilio/status?touch_key=...).
            "JOURNEYS_PUBLIC_URL": self.sink.base_url,
        }

    def set_failures(self, phones: dict[str, tuple[str, int | None]], send_errors: dict[str, int],
                     unsubscribed: set[str], blocked: set[str]) -> None:
        """Some customers cannot be reached on a channel, as in any real book (fallback shows)."""
        self.twilio.delivery_outcomes.update(phones)
        self.twilio.recipient_errors.update(send_errors)
        self.wechat.unsubscribed.update(unsubscribed)
        self.wechat.delivery_status.update({openid: "failed:user block" for openid in blocked})

    def inject_replies(self, sms: list[tuple[str, str]], wechat: list[tuple[str, str]]) -> None:
        """Customers' texts, sent the way the providers deliver them (signed, to the sink)."""
        if sms:
            self.twilio.run(_gather([self.twilio.inject_inbound(phone, self.SMS_SENDER, body) for phone, body in sms]),
                            timeout=120)
        if wechat:
            self.wechat.run(_gather([self.wechat.inject_text(openid, body) for openid, body in wechat]), timeout=120)

    def replay(self, at: datetime) -> Counter[str]:
        """Wait for the stand-ins' queued callbacks, then hand every new one to our handlers at ``at``."""
        from engine.loop.receipts import handle_twilio_inbound, handle_twilio_status, handle_wechat

        self.twilio.run(self.twilio.drain_callbacks(), timeout=300)
        self.wechat.run(self.wechat.drain_callbacks(), timeout=300)
        received = self.sink.received[self._replayed:]
        self._replayed += len(received)
        results: Counter[str] = Counter()
        for r in received:
            if r.path == "/hooks/twilio/status":
                status, body = handle_twilio_status(r.url, r.headers, r.body, db_url=self.db_url,
                                                    auth_token=self.twilio.auth_token, at=at)
            elif r.path == "/hooks/twilio/inbound":
                status, body = handle_twilio_inbound(r.url, r.headers, r.body, db_url=self.db_url,
                                                     auth_token=self.twilio.auth_token, at=at)
                body = "inbound"
            elif r.path == "/hooks/wechat":
                status, body = handle_wechat("POST", r.url, r.body, db_url=self.db_url,
                                             token=self.wechat.callback_token, at=at)
                body = "wechat"
            else:
                status, body = 404, "unknown"
            results[f"{r.path.rsplit('/', 1)[-1]}:{status}:{body}"] += 1
        return results

    def duplicates(self) -> dict[str, dict[str, int]]:
        """Idempotency keys a provider accepted more than once (should be none)."""
        return {"sms": self.twilio.log.duplicates(), "wechat": self.wechat.log.duplicates(),
                "email": self.smtp.log.duplicates()}

    def accepted(self) -> dict[str, int]:
        return {"sms": len(self.twilio.log), "wechat": len(self.wechat.log), "email": len(self.smtp.log)}

    def close(self) -> None:
        for stop in (self.twilio.stop, self.wechat.stop, self.smtp.stop):
            try:
                stop()
            except Exception:  # shutting down: one stand-in failing to stop must not hide the others
                log.warning("stopping a stand-in failed", exc_info=True)
        try:
            self._sink_loop.run(self.sink.stop(), timeout=10)
        finally:
            self._sink_loop.stop()


# --- the product's parts that the demo drives ------------------------------------------------------


def _count(result: Any, *names: str) -> int:
    """A count out of whatever a part returns (a dataclass, a dict, a list)."""
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    for name in names:
        value = result.get(name) if isinstance(result, dict) else getattr(result, name, None)
        if isinstance(value, int):
            return value
        if isinstance(value, list | tuple | set):
            return len(value)
    return 0


class Planner:
    """The product's planner over the demo database."""

    name = "engine.planning.planner.plan"

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def plan(self, at: datetime, start: datetime | None = None) -> int:
        """Plan what is due in (last plan's end, ``at``]; ``start`` only for the very first window."""
        from engine.planning.planner import plan

        return plan(at=at, start=start, url=self.db_url).touches_written


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


# --- the simulated world ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """What the simulation needs of a customer (held in memory only; never printed)."""

    id: int
    external_id: str
    tier: str
    phone: str | None
    openid: str | None


class Book:
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


def _scalar(db_url: str, sql: str, **params: Any) -> int:
    from sqlalchemy import text

    from store.db import get_engine

    with get_engine(db_url).connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


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
        rng = self.rng
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


# --- agents -------------------------------------------------------------------------------------------

GENERIC_OUTCOMES = (("reached", 54), ("resolved", 12), ("no_answer", 20), ("call_back", 8), ("wrong_number", 4),
                    ("complaint_raised", 2))
COMPLAINT_OUTCOMES = (("resolved", 75), ("reached", 20), ("no_answer", 5))
RENEWAL_OUTCOMES = (("renewal_yes", 55), ("renewal_no", 15), ("no_answer", 20), ("call_back", 10))
SUPERVISOR_OUTCOMES = (("resolved", 70), ("reached", 30))
NOTES = {
    "reached": "已联系客户，介绍权益（演示）", "resolved": "问题已解决（演示）",
    "no_answer": "无人接听（演示）", "call_back": "客户约定回电时间（演示）",
    "wrong_number": "号码有误（演示）", "complaint_raised": "客户表达不满（演示）",
    "renewal_yes": "客户确认续保（演示）", "renewal_no": "客户暂不续保（演示）",
}


SHIFT_START, SHIFT_END = time(8, 30), time(20, 30)  # when the agents work (the desk's last round)


def _within_shift(when: datetime, created: datetime) -> datetime:
    """An agent who means to be on time and whose moment falls at night does it in the last round
    of the evening before (when the task already existed then), else in the first of the morning."""
    local = when.astimezone(_local())
    if SHIFT_START <= local.time() <= SHIFT_END:
        return when
    evening_day = local.date() if local.time() > SHIFT_END else local.date() - timedelta(days=1)
    evening = local_moment(evening_day, SHIFT_END)
    if evening >= created:
        return evening
    return local_moment(evening_day + timedelta(days=1), SHIFT_START)


class Desk:
    """A few agents and a supervisor working their tasks through ``console.tasks``, some of them late."""

    def __init__(self, db_url: str, world: World, rng: random.Random, agents: int) -> None:
        from console.auth import CurrentUser, create_user
        from store.db import session_scope

        self.db_url = db_url
        self.world = world
        self.rng = rng
        self.handle_at: dict[int, datetime] = {}
        with session_scope(db_url) as session:
            # Passwords nobody needs: the demo acts through the task service, not the login page.
            made = [create_user(session, f"agent{i:02d}", secrets.token_urlsafe(16), "agent",
                                display_name=f"坐席{i:02d}") for i in range(1, agents + 1)]
            boss = create_user(session, "supervisor01", secrets.token_urlsafe(16), "supervisor", display_name="主管01")
            self.agents = [CurrentUser.of(u) for u in made]
            self.supervisor = CurrentUser.of(boss)
        self.users = {u.id: u for u in [*self.agents, self.supervisor]}
        self._next_agent = 0

    def _when(self, created: datetime, due: datetime) -> datetime:
        """When the agent gets to a task: mostly inside its SLA window, ``LATE_SHARE`` after it."""
        window = max(timedelta(minutes=30), due - created)
        if self.rng.random() < LATE_SHARE:
            return created + window * self.rng.uniform(1.05, 2.0)
        return _within_shift(created + window * self.rng.uniform(0.02, 0.85), created)

    def _outcome(self, queue: str, journey: str) -> str:
        from console.tasks import SUPERVISOR_QUEUE

        table: tuple[tuple[str, int], ...]
        if queue == SUPERVISOR_QUEUE:
            table = SUPERVISOR_OUTCOMES
        elif "complaint" in queue or "complaint" in journey:
            table = COMPLAINT_OUTCOMES
        elif "renewal" in queue or "renewal" in journey:
            table = RENEWAL_OUTCOMES
        else:
            table = GENERIC_OUTCOMES
        return self.rng.choices([o for o, _ in table], weights=[w for _, w in table])[0]

    def work(self, at: datetime, stats: DayStats) -> None:
        import sqlalchemy as sa
        from sqlmodel import col, select

        from console.assignment import assign_open_tasks, escalate_overdue
        from console.tasks import ACTIVE, SUPERVISOR_QUEUE, TaskError, claim, complete
        from store.clock import as_utc
        from store.db import session_scope
        from store.models import AgentTask, Customer

        assign_open_tasks(at, db_url=self.db_url)
        escalate_overdue(at, db_url=self.db_url)
        with session_scope(self.db_url) as session:
            rows = session.execute(
                sa.select(col(AgentTask.id), col(AgentTask.created_at), col(AgentTask.due_at), col(AgentTask.queue),
                          col(AgentTask.journey_id), col(AgentTask.assignee_id), col(AgentTask.status),
                          col(Customer.external_id))
                .join(Customer, col(Customer.id) == AgentTask.customer_id)
                .where(col(AgentTask.status).in_(ACTIVE)).order_by(col(AgentTask.due_at), col(AgentTask.id))
            ).all()
        for task_id, created, due, queue, journey, assignee_id, status, external_id in rows:
            assert task_id is not None
            created, due = as_utc(created), as_utc(due)
            when = self.handle_at.setdefault(task_id, self._when(created, due))
            if when > at:
                continue
            if queue == SUPERVISOR_QUEUE:
                user = self.users.get(assignee_id or -1, self.supervisor)
            elif assignee_id in self.users:
                user = self.users[assignee_id]
            else:
                user = self.agents[self._next_agent % len(self.agents)]
                self._next_agent += 1
            outcome = self._outcome(queue, journey)
            callback_at = None
            if outcome == "call_back":
                callback_at = at + timedelta(days=self.rng.randint(1, 3))
            try:
                if status == "open":
                    claim(user, task_id, now=at, db_url=self.db_url)
                complete(user, task_id, outcome, notes=NOTES[outcome], callback_at=callback_at, now=at,
                         db_url=self.db_url)
            except TaskError as exc:  # e.g. escalated and reassigned meanwhile: the next tick sees it again
                log.info("task %s not completed: %s", task_id, exc.code)
                continue
            stats.tasks_done += 1
            if at > due:
                stats.tasks_late += 1
            if outcome in ("renewal_yes", "renewal_no"):
                with session_scope(self.db_url) as session:
                    customer_id = session.exec(select(AgentTask.customer_id).where(AgentTask.id == task_id)).one()
                self.world.renewal_intent[customer_id] = outcome == "renewal_yes"
            if outcome in ("reached", "resolved") and self.rng.random() < CSAT_AFTER_TASK_RATE:
                # The post-call satisfaction survey comes back an hour or two later.
                score = self.rng.choices((1, 2, 3, 4, 5), weights=(4, 5, 9, 32, 50))[0]
                self.world.later(at + timedelta(minutes=self.rng.randint(30, 180)), "survey.answered", external_id,
                                 {"survey": "csat_callback", "csat": score}, f"demo:csat:{task_id}")


# --- the run ------------------------------------------------------------------------------------------


def _day_figures(db_url: str, start: datetime, end: datetime) -> dict[str, int]:
    """The day's touches and tasks, by the report's definitions (planned_for / created_at in the day)."""
    from sqlalchemy import bindparam, text
    from sqlmodel.sql.sqltypes import UTCDateTime

    from store.db import get_engine

    params = [bindparam("s", start, type_=UTCDateTime()), bindparam("e", end, type_=UTCDateTime())]
    with get_engine(db_url).connect() as conn:
        planned, delivered, failed = conn.execute(
            text("SELECT count(*), coalesce(sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), 0), "
                 "coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM touch "
                 "WHERE planned_for >= :s AND planned_for < :e AND status != 'cancelled'").bindparams(*params)
        ).one()
        tasks = conn.execute(
            text("SELECT count(*) FROM agent_task WHERE created_at >= :s AND created_at < :e "
                 "AND status != 'cancelled'").bindparams(*params)
        ).scalar()
    return {"planned": int(planned), "delivered": int(delivered), "failed": int(failed), "tasks": int(tasks or 0)}


@dataclass
class _Parts:
    """What a simulated day works with."""

    db_url: str
    clock: SimClock
    planner: Planner
    dispatch_flow: Any
    providers: Providers
    book: Book = field(init=False)
    world: World = field(init=False)
    desk: Desk = field(init=False)


class Simulation:
    def __init__(self, settings: DemoSettings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.first_day = settings.start_date()
        self.rng = random.Random(settings.seed)

    def run(self) -> DemoResult:
        started = wallclock.perf_counter()
        settings = self.settings
        if settings.customers < 1 or settings.days < 1:
            raise DemoError("--customers and --days must be at least 1")
        out_dir = settings.out_dir
        db_path = _fresh_out_dir(out_dir)
        db_url = f"sqlite:///{db_path.resolve()}"
        _quiet_prefect(out_dir)
        os.environ["JOURNEYS_DATABASE_URL"] = db_url
        os.environ.pop("JOURNEYS_OUTBOX_DIR", None)  # the stand-ins, not the outbox files
        log_file = out_dir / LOG_NAME
        with _log_to_file(log_file):
            return self._run(db_url, db_path, log_file, started)

    def _run(self, db_url: str, db_path: Path, log_file: Path, started: float) -> DemoResult:
        from engine.demo.seeding import seed_book
        from store.migrate import upgrade

        settings, console = self.settings, self.console
        first, days = self.first_day, settings.days
        period_start = local_moment(first, time(0, 0))
        period_end = local_moment(first + timedelta(days=days), time(0, 0))
        console.print(f"[bold]Service Journeys demo[/]: {settings.customers:,} customers, {days} days from "
                      f"{first.isoformat()} (seed {settings.seed}), database {db_path}")
        upgrade(db_url)
        # Loaded the day before the period, so every customer has a tier when the period starts.
        seeded = seed_book(db_url, settings.customers, settings.seed, as_of=first - timedelta(days=1))
        console.print(f"  seeded {seeded.customers:,} customers, {seeded.policies:,} policies, "
                      f"{seeded.claims:,} claims; tiers "
                      + ", ".join(f"{t} {seeded.tiers.get(t, 0):,}" for t in TIERS))

        providers = Providers(db_url, self.settings.out_dir)
        try:
            os.environ.update(providers.env())
            return self._simulate(db_url, db_path, log_file, started, providers, period_start, period_end)
        finally:
            providers.close()

    def _simulate(self, db_url: str, db_path: Path, log_file: Path, started: float, providers: Providers,
                  period_start: datetime, period_end: datetime) -> DemoResult:
        from store.clock import simulated_time

        self.console.print("  starting Prefect's local engine (the first flow run takes a few seconds)")
        from engine.runtime.flows import dispatch_flow  # after _quiet_prefect: Prefect reads its settings on import

        _mask_prefect_handlers()
        clock = SimClock(period_start)
        planner = Planner(db_url)
        parts = _Parts(db_url=db_url, clock=clock, planner=planner, dispatch_flow=dispatch_flow, providers=providers)
        # Parts that stamp rows with "now" themselves (the planner's created_at, emit_event's horizon,
        # task audit times) read the simulated clock; the rest get the time passed explicitly.
        with simulated_time(clock):
            total = self._days(parts, period_start)
            clock.now = period_end
            return self._report(db_url, db_path, log_file, started, providers, planner, total, period_start,
                                period_end)

    def _days(self, parts: _Parts, period_start: datetime) -> DayStats:
        settings, console, rng, db_url = self.settings, self.console, self.rng, parts.db_url
        parts.book = Book(db_url)
        parts.book.unreachable(rng, parts.providers)
        parts.world = World(db_url, parts.book, Events(db_url, parts.clock), parts.providers, rng)
        parts.desk = Desk(db_url, parts.world, rng, agents=max(3, min(12, settings.customers // 500)))
        parts.planner.plan(period_start, start=period_start)  # the first window starts with the period
        total = DayStats()
        loop = asyncio.new_event_loop()
        try:
            for index in range(settings.days):
                day = self.first_day + timedelta(days=index)
                stats = self._day(day, loop, parts)
                figures = _day_figures(db_url, local_moment(day, time(0, 0)),
                                       local_moment(day + timedelta(days=1), time(0, 0)))
                stats.planned, stats.delivered, stats.failed = (figures["planned"], figures["delivered"],
                                                                figures["failed"])
                stats.tasks_created = figures["tasks"]
                total.add(stats)
                console.print(
                    f"  day {index + 1:>2}/{settings.days} {day.isoformat()} {day.strftime('%a')}: "
                    f"planned {stats.planned:>4}, sent {stats.sent:>4}, delivered {stats.delivered:>4}, "
                    f"replies {stats.replies:>3} (opt-outs {stats.opt_outs}), events {stats.events:>3}, "
                    f"tasks +{stats.tasks_created} done {stats.tasks_done} (late {stats.tasks_late}), "
                    f"churn warnings {stats.churn_warnings}"
                    + (f", renewed {stats.renewed} lapsed {stats.lapsed}" if stats.renewed or stats.lapsed else "")
                )
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        return total

    def _day(self, day: date, loop: asyncio.AbstractEventLoop, parts: _Parts) -> DayStats:
        from engine.loop.monitoring import churn_warning_check, run_tier_review
        from engine.loop.retier import retier

        stats = DayStats()
        db_url, clock, world, desk, providers = parts.db_url, parts.clock, parts.world, parts.desk, parts.providers
        day_start, day_end = local_moment(day, time(0, 0)), local_moment(day + timedelta(days=1), time(0, 0))
        if day.weekday() == 0:  # Monday, as the embedded service schedules them
            clock.now = local_moment(day, RETIER_AT)
            retier(at=clock.now, url=db_url)
            parts.book.refresh()
            clock.now = local_moment(day, REVIEW_AT)
            run_tier_review(at=clock.now, url=db_url)
        clock.now = local_moment(day, CHURN_CHECK_AT)
        stats.churn_warnings = _count(churn_warning_check(at=clock.now, url=db_url), "warned")
        # The day's window is planned as the clock moves through it, (last plan, now] each time, as
        # the service does: planning ahead would let a wait_for time out before its event can come.
        # This first step covers the night and acts on the churn warnings just raised.
        clock.now = local_moment(day, PLAN_AT)
        parts.planner.plan(clock.now)
        previous = clock.now
        for hour in HOURS:
            now = local_moment(day, hour)
            clock.now = previous
            stats.events += world.customer_events(previous, now, (now - previous) / (day_end - day_start))
            clock.now = now
            if hour in DISPATCH_AT:
                parts.planner.plan(now)  # what fell due since the last run, then send it
                result = loop.run_until_complete(parts.dispatch_flow(now=now.isoformat(), batch_size=500, lanes=2))
                stats.sent += int(result.get("sent", 0))
                # Receipts arrive a minute after the send, replies a quarter of an hour later.
                clock.now = now + timedelta(minutes=1)
                stats.receipts.update(providers.replay(clock.now))
                clock.now = now + timedelta(minutes=15)
                world.replies(now + timedelta(minutes=1), clock.now, stats)
            clock.now = now + timedelta(minutes=30)
            desk.work(clock.now, stats)
            previous = clock.now
        clock.now = local_moment(day, DAY_END)
        stats.events += world.settle_claims(clock.now)
        world.policies_at_expiry(day, clock.now, stats)
        return stats

    def _report(self, db_url: str, db_path: Path, log_file: Path, started: float, providers: Providers,
                planner: Planner, total: DayStats, period_start: datetime, period_end: datetime) -> DemoResult:
        from engine.loop.charts import render_all
        from engine.loop.reports import build_report, tier_summary

        out_dir = self.settings.out_dir
        found = {row["tier"]: row for row in tier_summary(period_start, period_end, now=period_end, url=db_url)}
        # Every tier, top-down, even one with no customer in a small book; then any other group ("none").
        rows = [found.get(tier, {"tier": tier}) for tier in TIERS] + [r for t, r in found.items() if t not in TIERS]
        report = build_report(period_start, period_end, "tier", now=period_end, url=db_url)
        charts = render_all(report, out_dir)
        result = DemoResult(
            start=period_start, end=period_end, rows=rows, total=report["total"], stats=total, charts=charts,
            database=db_path, log_file=log_file, provider_duplicates=providers.duplicates(), planner=planner.name,
            seconds=wallclock.perf_counter() - started, report=report,
        )
        summary = {
            "period": {"from": period_start.isoformat(), "to": period_end.isoformat()},
            "customers": self.settings.customers, "days": self.settings.days, "seed": self.settings.seed,
            "planner": planner.name, "tiers": rows,
            "total": {k: report["total"].get(k) for k in (
                "planned", "delivered", "reach_rate", "tasks", "sla_judged", "sla_met", "sla_compliance",
                "nps_answers", "nps", "csat", "churn_rate", "renewal_rate", "precision")},
            "simulated": {k: v for k, v in vars(total).items() if isinstance(v, int)},
            "receipts": dict(total.receipts),
            "providers": {"accepted": providers.accepted(), "duplicates": result.provider_duplicates},
            "charts": [p.name for p in charts],
            "seconds": round(result.seconds, 1),
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n",
                                              encoding="utf-8")
        return result


# --- output -------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def summary_table(result: DemoResult) -> Table:
    """The per-tier summary, every tier listed (top-down) even when it had nothing this month."""
    table = Table(title=f"Per tier, {result.start.astimezone(_local()).date()} – "
                  f"{(result.end.astimezone(_local()) - timedelta(days=1)).date()}", header_style="bold")
    for heading in ("tier", "customers", "planned", "delivered", "reach", "tasks", "SLA met", "NPS"):
        table.add_column(heading, justify="left" if heading == "tier" else "right")
    by_tier = {row["tier"]: row for row in result.rows}
    for tier in [*TIERS, *sorted(t for t in by_tier if t not in TIERS)]:
        row = by_tier.get(tier, {})
        judged, met = row.get("sla_judged") or 0, row.get("sla_met") or 0
        sla = f"{met}/{judged} {_pct(row.get('sla_compliance'))}" if judged else "—"
        answers = row.get("nps_answers") or 0
        nps = f"{_num(row.get('nps'))} (n={answers})" if answers else "—"
        table.add_row(tier, f"{row.get('customers') or 0:,}", f"{row.get('planned') or 0:,}",
                      f"{row.get('delivered') or 0:,}", _pct(row.get("reach_rate")), f"{row.get('tasks') or 0:,}",
                      sla, nps)
    return table


def _local() -> Any:
    from store.clock import zone

    return zone(LOCAL_TZ)


def totals_line(result: DemoResult) -> str:
    t, s = result.total, result.stats
    judged, met = t.get("sla_judged") or 0, t.get("sla_met") or 0
    duplicates = sum(len(d) for d in result.provider_duplicates.values())
    return (
        f"Total: planned {t.get('planned') or 0:,}, delivered {t.get('delivered') or 0:,} "
        f"(reach {_pct(t.get('reach_rate'))}), tasks {t.get('tasks') or 0:,}, SLA met {met}/{judged} "
        f"({_pct(t.get('sla_compliance'))}), NPS {_num(t.get('nps'))} from {t.get('nps_answers') or 0} answers; "
        f"sent {s.sent:,}, replies {s.replies:,}, opt-outs {s.opt_outs}, events {s.events:,}, "
        f"tasks done {s.tasks_done:,} ({s.tasks_late} late), churn warnings {s.churn_warnings}, "
        f"sent twice {duplicates}; {result.seconds:.0f} s"
    )


def print_result(result: DemoResult, console: Console) -> None:
    from engine.loop.reports import render_by_metric

    console.print(summary_table(result))
    console.print(totals_line(result))
    if result.report is not None:
        render_by_metric(result.report, console)
    console.print(f"Charts: {', '.join(str(p) for p in result.charts)}")
    console.print(f"Database: {result.database}  Log: {result.log_file}  Summary: "
                  f"{result.log_file.parent / 'summary.json'}")


def run_demo(settings: DemoSettings, console: Console | None = None) -> DemoResult:
    # Piped or redirected output gets 120 columns rather than Rich's 80, so the table is not folded,
    # and soft_wrap keeps each progress line on one line.
    console = console or Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
    result = Simulation(settings, console).run()
    print_result(result, console)
    return result
