"""``journeys purge --older-than 3y``: anonymise customers past their retention period (SPEC §9).

Who is past retention at ``cutoff = now - period``: a customer not yet anonymised, created
before the cutoff, with

- no policy in force (status ``active``) and none that ended on or after the cutoff,
- no activity on or after the cutoff: ``last_active_at`` (logins), events, claims filed or
  settled, replies/clicks/opt-outs, survey answers, agent tasks completed (a contact).

Our own outbound touches are not the customer's activity: a journey still writing to a
customer does not extend how long their personal data may be kept.

What anonymising does, in one transaction per batch:

- the customer row keeps its id, tier, branch, time zone, locale, advisor and dates, so
  every figure grouped by tier, branch or journey stays the same; name becomes ``匿名``,
  ``external_id`` becomes ``anonymised-<id>`` (the source system's id is a way back to the
  person), phone, e-mail, openid, app push registration id, ID number, birthday, attributes and
  consent records are cleared, consent to every channel and purpose is withdrawn, ``anonymised_at`` is set;
- policies and claims are kept (product line, premium, dates, status, amount), but their
  numbers in the source system become ``anonymised-policy-<id>`` and ``anonymised-claim-<id>``:
  a policy number leads back to its holder as surely as the customer's own id;
- touches, outcomes, tasks, events and survey answers are kept (counts, statuses, scores,
  times), but the free text a person wrote in them (reply texts, survey comments, agent
  notes) is removed, an event's and an outcome's data keep only codes and figures (``_scrub``; a
  value shaped like a code is no code when it holds one of her identifiers in any case, a run of
  digits a reference carries or an openid's shape),
  a touch's reason (a provider's error may quote the number or address it refused) keeps its
  words without any phone, e-mail, ID number or openid, masked or not (``redact_text``), and an
  event's id from the source system becomes ``anonymised-event-<id>`` (ours embed the customer's);
- an occurrence that is not one of the planner's own forms (an attribute's date, a CRM's event id)
  becomes ``anonymised-<n>`` in the enrollment, touches and tasks alike, and the keys made of it with
  it; the providers' message ids go, and outcomes' dedup keys become ``anonymised-outcome-<id>``
  (``store.retention_keys``);
- work still pending for them is stopped: planned touches are cancelled, active
  enrollments exit (``anonymised``), open tasks are cancelled;
- a birthday greeting's times (its planned day is the birthday) move back to 1 January of its year
  (``store.retention_dates``);
- an ``AuditLog`` row per customer (action ``purge``) and one for the run.

``dry_run`` finds and counts the same customers and changes nothing.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import String, and_, bindparam, cast, exists, literal, or_, select, update
from sqlalchemy.engine import Connection

from store.clock import as_utc, utcnow
from store.db import make_engine
from store.masking import mask_text, redact_text
from store.models import (
    AgentTask,
    AuditLog,
    Claim,
    Customer,
    Enrollment,
    Event,
    Outcome,
    Policy,
    SurveyAnswer,
    TaskStatus,
    Touch,
    TouchStatus,
)
from store.retention_dates import generalise_birthday_times
from store.retention_keys import anonymise_keys
from store.touch_reasons import ANONYMISED

ANONYMOUS_NAME = "匿名"
DEFAULT_BATCH = 500
# Outcome kinds that are the customer doing something (not us sending).
CUSTOMER_OUTCOME_KINDS = ("replied", "clicked", "opted_out")
# Keys of event data that can carry what a person wrote or who they are.
FREE_TEXT_KEYS = frozenset({"text", "comment", "content", "body", "notes", "note", "name", "phone", "email",
                            "openid", "id_number", "address", "from", "to",
                            # WeChat's and the push provider's names for who a message went to or came from
                            "unionid", "touser", "fromusername", "push_registration_id", "registration_id"})

# A coded value (a channel, a tier, an outcome, a survey's name): what figures group by. Anything else
# in text (a name, a plate, a sentence, an id of the source system) may lead back to the person.
_CODE_RE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
# What a code never holds and a reference does: a policy's, a claim's or a case's number in lower case
# (``pa-2021-88812345``), an openid in lower case whatever its mix of letters and digits.
_REFERENCE_DIGITS = re.compile(r"\d{5}")
_OPENID_SHAPE = re.compile(r"o[a-z0-9_-]{27}")
# Her identifiers shorter than this are not looked for inside other values (a one-letter name would
# take every code with it).
_SHORTEST_KNOWN = 4
_DROPPED = object()

_PERIOD_RE = re.compile(r"^\s*(\d+)\s*([ymwd])\s*$", re.IGNORECASE)


class RetentionError(ValueError):
    """Bad purge arguments (period) or a database without the schema."""


# Past a century no retention rule means it, and the cut-off would leave the years a moment may
# have (10**20 years ended in an OverflowError): the bound lives here so every caller has it.
LONGEST_RETENTION = {"y": 100, "m": 1200, "w": 5218, "d": 36525}


class RetentionTooLong(RetentionError):
    """A well-formed period longer than :data:`LONGEST_RETENTION`."""


def parse_period(text: str) -> tuple[int, str]:
    """``3y``, ``18m`` (months), ``8w``, ``400d`` → (amount, unit), at most a century."""
    match = _PERIOD_RE.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise RetentionError(
            f"bad retention period {text!r}: a whole number and a unit y (years), m (months), w or d, e.g. 3y"
        )
    amount, unit = int(match.group(1)), match.group(2).lower()
    if amount > LONGEST_RETENTION[unit]:
        raise RetentionTooLong(f"retention period {text!r} is longer than a century "
                               "(at most 100y, 1200m, 5218w or 36525d)")
    return amount, unit


def cutoff_for(period: str, now: datetime) -> datetime:
    """``now`` minus ``period``; calendar years and months (29 Feb → 28 Feb)."""
    amount, unit = parse_period(period)
    now = as_utc(now)
    if unit in ("y", "m"):
        months = amount * 12 if unit == "y" else amount
        total = now.year * 12 + (now.month - 1) - months
        year, month = divmod(total, 12)
        month += 1
        day = now.day
        while day > 28:
            try:
                date(year, month, day)
                break
            except ValueError:
                day -= 1
        return now.replace(year=year, month=month, day=day)
    return now - (timedelta(weeks=amount) if unit == "w" else timedelta(days=amount))


@dataclass
class PurgeReport:
    period: str
    cutoff: datetime
    dry_run: bool
    customer_ids: list[int] = field(default_factory=list)
    cancelled_touches: int = 0
    exited_enrollments: int = 0
    cancelled_tasks: int = 0
    actor: str = ""

    @property
    def customers(self) -> int:
        return len(self.customer_ids)

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "customers": self.customers,
            "cancelled_touches": self.cancelled_touches,
            "exited_enrollments": self.exited_enrollments,
            "cancelled_tasks": self.cancelled_tasks,
        }


def _t(model: Any) -> Any:
    return model.__table__


def eligible_condition(cutoff: datetime) -> Any:
    """SQL condition on ``customer`` rows: past retention at ``cutoff`` (see the module doc)."""
    c, p, cl, e = _t(Customer), _t(Policy), _t(Claim), _t(Event)
    o, s, task = _t(Outcome), _t(SurveyAnswer), _t(AgentTask)
    cutoff_day = cutoff.date()
    return and_(
        c.c.anonymised_at.is_(None),
        c.c.created_at < cutoff,
        or_(c.c.last_active_at.is_(None), c.c.last_active_at < cutoff),
        ~exists().where(p.c.customer_id == c.c.id, or_(p.c.status == "active", p.c.expiry_date >= cutoff_day)),
        ~exists().where(cl.c.customer_id == c.c.id, or_(cl.c.filed_at >= cutoff, cl.c.settled_at >= cutoff)),
        ~exists().where(e.c.customer_id == c.c.id, e.c.occurred_at >= cutoff),
        ~exists().where(o.c.customer_id == c.c.id, o.c.kind.in_(CUSTOMER_OUTCOME_KINDS), o.c.occurred_at >= cutoff),
        ~exists().where(s.c.customer_id == c.c.id, s.c.answered_at >= cutoff),
        ~exists().where(task.c.customer_id == c.c.id, task.c.completed_at >= cutoff),
    )


def purge(
    url: str,
    period: str,
    *,
    dry_run: bool = False,
    actor: str | None = None,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> PurgeReport:
    """Anonymise every customer past retention (``period`` like ``3y``); see the module doc."""
    moment = as_utc(now) if now else utcnow()
    cutoff = cutoff_for(period, moment)
    report = PurgeReport(period=period, cutoff=cutoff, dry_run=dry_run, actor=actor or _os_user())
    c = _t(Customer)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, "customer"):
                raise RetentionError("the database has no schema yet: run `journeys db upgrade` first")
            ids = [int(i) for i in conn.execute(
                select(c.c.id).where(eligible_condition(cutoff)).order_by(c.c.id)
            ).scalars()]
        if dry_run:
            report.customer_ids = ids
            return report
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            with engine.begin() as conn:
                # Checked again inside the write transaction: activity may have come in since the scan.
                still = [int(i) for i in conn.execute(
                    select(c.c.id).where(c.c.id.in_(chunk), eligible_condition(cutoff))
                ).scalars()]
                if still:
                    _anonymise(conn, still, moment, report)
            report.customer_ids.extend(still)
            if progress is not None:
                progress(len(chunk))
        with engine.begin() as conn:
            conn.execute(_t(AuditLog).insert().values(
                actor=report.actor[:64], action="purge", target_type="customer", target_id="*",
                detail={**report.as_dict(), "summary": True}, at=moment,
            ))
        return report
    finally:
        engine.dispose()


def _anonymise(conn: Connection, ids: list[int], moment: datetime, report: PurgeReport) -> None:
    c, t, enr, task, s, e = _t(Customer), _t(Touch), _t(Enrollment), _t(AgentTask), _t(SurveyAnswer), _t(Event)
    known = _their_values(conn, ids)
    conn.execute(
        update(c).where(c.c.id.in_(ids)).values(
            external_id=literal("anonymised-") + cast(c.c.id, String),
            name=ANONYMOUS_NAME, phone=None, email=None, wechat_openid=None, push_registration_id=None,
            id_number_enc=None, birthday=None, birth_md=None, attributes={}, preferred_channels=[],
            **_withdrawn_consents(), anonymised_at=moment, updated_at=moment,
        )
    )
    # Before the event ids below are replaced: it fills event_id from an occurrence naming one of them.
    anonymise_keys(conn, ids)
    # Before the pending work is stopped below: the time an enrollment exits now is not the birthday's.
    generalise_birthday_times(conn, ids)
    for kept, word in ((_t(Policy), "policy"), (_t(Claim), "claim")):
        conn.execute(update(kept).where(kept.c.customer_id.in_(ids))
                     .values(external_id=literal(f"anonymised-{word}-") + cast(kept.c.id, String)))
    report.cancelled_touches += conn.execute(
        update(t).where(t.c.customer_id.in_(ids), t.c.status == TouchStatus.PLANNED)
        .values(status=TouchStatus.CANCELLED, error_reason=ANONYMISED)
    ).rowcount
    report.exited_enrollments += conn.execute(
        update(enr).where(enr.c.customer_id.in_(ids), enr.c.state.in_(("active", "waiting")))
        .values(state="exited", exited_at=moment, exit_reason="anonymised", next_at=None)
    ).rowcount
    report.cancelled_tasks += conn.execute(
        update(task).where(task.c.customer_id.in_(ids), task.c.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)))
        .values(status=TaskStatus.CANCELLED)
    ).rowcount
    conn.execute(update(task).where(task.c.customer_id.in_(ids)).values(notes=None))
    conn.execute(update(s).where(s.c.customer_id.in_(ids)).values(comment=None))
    conn.execute(update(e).where(e.c.customer_id.in_(ids))
                 .values(external_id=literal("anonymised-event-") + cast(e.c.id, String)))
    scrubbed = partial(_scrubbed_data, known=known)
    _rewrite(conn, e.c.data, e.c.customer_id.in_(ids), scrubbed)
    o = _t(Outcome)
    # An outcome names its customer, or only the touch or task it is about.
    _rewrite(conn, o.c.detail, or_(o.c.customer_id.in_(ids),
                                   o.c.touch_id.in_(select(t.c.id).where(t.c.customer_id.in_(ids))),
                                   o.c.task_id.in_(select(task.c.id).where(task.c.customer_id.in_(ids)))),
             scrubbed)
    _rewrite(conn, t.c.error_reason, and_(t.c.customer_id.in_(ids), t.c.error_reason.is_not(None)), redact_text)
    conn.execute(
        _t(AuditLog).insert(),
        [{"actor": report.actor[:64], "action": "purge", "target_type": "customer", "target_id": str(i),
          "detail": {"period": report.period, "cutoff": report.cutoff.isoformat()}, "at": moment} for i in ids],
    )


def _rewrite(conn: Connection, column: Any, where: Any, clean: Callable[[Any], Any]) -> None:
    """``column`` of the rows ``where`` holds set to ``clean`` of its value: read in one query, the
    rows it changes written back in one executemany (the cleaning is Python's, not SQL's)."""
    table = column.table
    changed = [{"row_id": row_id, "cleaned": cleaned}
               for row_id, value in conn.execute(select(table.c.id, column).where(where)).all()
               if (cleaned := clean(value)) != value]
    if changed:
        rewrite = update(table).where(table.c.id == bindparam("row_id"))
        conn.execute(rewrite.values({column.name: bindparam("cleaned", type_=column.type)}), changed)


def _withdrawn_consents() -> dict[str, Any]:
    """Every consent column of ``customer`` withdrawn and its source and time cleared, found from the
    table itself: a channel or purpose added later (push and the marketing consents were, in 0009)
    is cleared with the rest rather than left behind, with the source naming how it was given."""
    values: dict[str, Any] = {}
    for column in _t(Customer).columns:
        if not column.name.startswith("consent_"):
            continue
        if column.name.endswith(("_source", "_at")):
            values[column.name] = None
        else:
            values[column.name] = False
    return values


def _their_values(conn: Connection, ids: list[int]) -> frozenset[str]:
    """The batch's identifiers as the source systems and WeChat wrote them, case-folded, read before the
    purge replaces them: the customer's own and her policies', claims' and events' ids, her name,
    addresses and the national part of her phone number."""
    c, e = _t(Customer), _t(Event)
    values: list[Any] = []
    for row in conn.execute(select(c.c.external_id, c.c.name, c.c.phone, c.c.email, c.c.wechat_openid,
                                   c.c.push_registration_id).where(c.c.id.in_(ids))):
        values.extend(row)
        values.append(re.sub(r"^\+86", "", row.phone or ""))
    for table in (_t(Policy), _t(Claim), e):
        values.extend(conn.execute(select(table.c.external_id).where(table.c.customer_id.in_(ids))).scalars())
    return frozenset(v.casefold() for v in values if isinstance(v, str) and len(v) >= _SHORTEST_KNOWN)


def _scrubbed_data(data: Any, known: frozenset[str] = frozenset()) -> Any:
    """A JSON column's value scrubbed (``_scrub``); one that is all free text becomes empty."""
    cleaned = _scrub(data, known)
    return {} if cleaned is _DROPPED else cleaned


def _is_code(text: str, known: frozenset[str]) -> bool:
    """Whether ``text`` is a coded value figures group by, not a reference to a person: a code's shape,
    no run of five digits, not an openid's shape, and none of ``known`` (her identifiers) among its words."""
    if not _CODE_RE.fullmatch(text) or _REFERENCE_DIGITS.search(text) or _OPENID_SHAPE.fullmatch(text):
        return False
    return not (known and _holds_one_of(text, known))


def _holds_one_of(text: str, known: frozenset[str]) -> bool:
    """Whether a run of ``text``'s words (split at ``_ . : -``) is one of ``known``: whole words, so that a
    customer named Mark does not take the category ``marketing`` with her."""
    bounds = [-1, *(i for i, char in enumerate(text) if char in "_.:-"), len(text)]
    return any(text[bounds[a] + 1:bounds[b]] in known
               for a in range(len(bounds)) for b in range(a + 1, len(bounds)))


def _scrub(data: Any, known: frozenset[str] = frozenset()) -> Any:
    """``data`` without what can name or describe a person (at any depth): the keys that carry free
    text or contact details, and, under any key, text that is not a code (``_is_code``) and any value
    holding a phone number, e-mail address or ID number. Event types are data (config/events.yaml), so a
    field added there (a ``plate``, a ``description``) is not on a list of names: its value decides."""
    if isinstance(data, dict):
        kept = {k: _scrub(v, known) for k, v in data.items() if str(k).lower() not in FREE_TEXT_KEYS}
        return {k: v for k, v in kept.items() if v is not _DROPPED}
    if isinstance(data, list):
        return [v for v in (_scrub(v, known) for v in data) if v is not _DROPPED]
    if isinstance(data, str) and not _is_code(data, known):
        return _DROPPED
    if data is not None and not isinstance(data, bool) and mask_text(str(data)) != str(data):
        return _DROPPED
    return data


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): the audit row still says it was the command line
        return "cli"

