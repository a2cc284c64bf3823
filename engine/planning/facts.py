"""Facts about customers, loaded in bulk: the columns conditions read, the derived fields of
``engine.language.catalogue`` and what delivery needs (consent, contact, zone).

Everything is set-based: one query per kind of data per chunk of customers, selected by an
id range (dense chunks) or an id list (sparse ones), never a query per customer. Derived
fields are only computed when some journey in force reads them, so a book whose journeys
read only ``customer.tier`` never touches the policy or event tables here.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, type_coerce
from sqlalchemy import select as _sa_select
from sqlalchemy.types import NullType
from sqlmodel import Session, col

from engine.planning.delivery_rules import Reach
from store.clock import as_utc
from store.models import Claim, Customer, Event, Policy, SurveyAnswer, Touch, TouchStatus

# sqlmodel types its columns as the Python values they hold, which SQLAlchemy's typed
# select() overloads reject; the queries here select plain columns, so use it untyped.
select: Any = _sa_select

# Past this many ids a range condition plus a filter in Python beats a long IN list.
SPARSE_LIMIT = 2000
DROPPED = "dropped"


# Fields that are counts of a customer's rows over the last N days, and that N.
COUNT_WINDOWS = {"logins_90d": timedelta(days=90), "replies_90d": timedelta(days=90),
                 "marketing_touches_7d": timedelta(days=7)}
# Fields that are the customer's latest value of something as of a moment.
LATEST = ("last_nps", "churn_risk")
# Fields worked out from a date column and the day they are judged on.
DATED = {"age": "birthday", "days_inactive": "last_active_at", "tenure_days": "created_at"}
TIMED = frozenset({*COUNT_WINDOWS, *LATEST, *DATED})


@dataclass(slots=True)
class Timeline:
    """The facts of one customer that change with time, for judging a condition at any moment
    of a run rather than at its end (a plan cut into several runs judges each moment alike)."""

    counts: dict[str, list[datetime]] = field(default_factory=dict)  # field → sorted row times
    latest: dict[str, tuple[list[datetime], list[Any]]] = field(default_factory=dict)  # field → times, values
    dated: tuple[str, ...] = ()  # the DATED fields read


@dataclass
class CustomerFacts:
    id: int
    external_id: str
    tier: str | None
    timezone: str
    locale: str
    advisor_id: int | None
    reach: Reach
    attributes: dict[str, Any]
    fact: dict[str, Any] = field(default_factory=dict)
    timeline: Timeline | None = None


def facts_at(cf: CustomerFacts, moment: datetime) -> dict[str, Any]:
    """The customer's facts as they stand at ``moment``: ``cf.fact`` with every field that
    changes with time worked out for that moment. ``cf.fact`` itself when none is read."""
    timeline = cf.timeline
    if timeline is None:
        return cf.fact
    fact = dict(cf.fact)
    moment = as_utc(moment)
    _timed_values(fact, cf.attributes, timeline, moment)
    return fact


def _timed_values(fact: dict[str, Any], attributes: dict[str, Any], timeline: Timeline, moment: datetime) -> None:
    on = moment.date()
    for name in timeline.dated:
        value = fact.get(f"customer.{DATED[name]}")
        if value is None:
            fact.pop(f"customer.{name}", None)
        elif name == "age":
            fact["customer.age"] = _age(value, on)
        else:
            fact[f"customer.{name}"] = (on - as_utc(value).date()).days
    for name, times in timeline.counts.items():
        fact[f"customer.{name}"] = (bisect.bisect_right(times, moment)
                                    - bisect.bisect_right(times, moment - COUNT_WINDOWS[name]))
    for name, (times, values) in timeline.latest.items():
        i = bisect.bisect_right(times, moment)
        value = values[i - 1] if i else (attributes.get("churn_risk") if name == "churn_risk" else None)
        if value is None:
            fact.pop(f"customer.{name}", None)
        else:
            fact[f"customer.{name}"] = value


def fetch_rows(session: Session, stmt: Any) -> Sequence[Any]:
    """The rows of a select, like ``session.execute(stmt).all()`` gives them (same values,
    indexable by position).

    On SQLite the driver's tuples are taken straight from the cursor and only the columns
    whose type converts values (booleans, dates, datetimes) are converted, each distinct
    value once: building SQLAlchemy's Row objects cost more than the query itself on chunks
    of tens of thousands of rows. Elsewhere it is ``execute().all()``.
    """
    dialect = session.get_bind().dialect
    if dialect.name != "sqlite":
        return session.execute(stmt).all()
    result = session.connection().execute(stmt)
    try:
        rows: Sequence[Any] = result.cursor.fetchall()
    finally:
        result.close()
    converters = []
    for i, column in enumerate(stmt.selected_columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            converters.append((i, process))
    if not converters or not rows:
        return rows
    columns = list(zip(*rows, strict=True))
    for i, process in converters:
        seen: dict[Any, Any] = {}
        converted = []
        for v in columns[i]:
            try:
                c = seen[v]
            except KeyError:
                c = process(v)
                if not isinstance(c, dict | list):  # never hand out one mutable value twice
                    seen[v] = c
            converted.append(c)
        columns[i] = tuple(converted)
    return list(zip(*columns, strict=True))


def id_filter(column: Any, lo: int, hi: int, ids: Sequence[int] | None) -> ColumnElement[bool]:
    if ids is not None and len(ids) <= SPARSE_LIMIT:
        return column.in_(list(ids))
    return and_(column >= lo, column <= hi)


def _age(birthday: date | None, on: date) -> int | None:
    if birthday is None:
        return None
    years = on.year - birthday.year
    if (on.month, on.day) < (birthday.month, birthday.day):
        years -= 1
    return years


def _raw(expr: Any) -> Any:
    """``expr`` as the driver returns it (0/1 on SQLite), with no per-row conversion: only its
    truth is read, once per distinct combination (``load_customers``)."""
    return type_coerce(expr, NullType())


def _filled(column: Any) -> Any:
    """Whether a contact column is filled, as truthy or not (what ``bool()`` of the value says):
    a low-cardinality value where the contact itself is one of its own per customer."""
    return _raw(column != "")


BASE_COLUMNS = (
    Customer.id, Customer.external_id, Customer.tier, Customer.timezone, Customer.locale, Customer.advisor_id,
    _raw(Customer.consent_sms), _raw(Customer.consent_wechat), _raw(Customer.consent_email),
    _filled(Customer.phone), _filled(Customer.email), _filled(Customer.wechat_openid),
    # App push and consent by purpose (issue 19, migration 0009): rows 12-17.
    _raw(Customer.consent_push), _filled(Customer.push_registration_id),
    _raw(Customer.consent_sms_marketing), _raw(Customer.consent_wechat_marketing),
    _raw(Customer.consent_email_marketing), _raw(Customer.consent_push_marketing),
)
# Columns read straight into ``customer.<name>`` when a condition names them.
PLAIN = ("tier_score", "branch", "birthday", "preferred_channels", "last_active_at", "created_at")


def load_customers(
    session: Session,
    lo: int,
    hi: int,
    ids: Sequence[int] | None,
    needed: set[str],
    at: datetime,
    with_attributes: bool = False,
    since: datetime | None = None,
) -> dict[int, CustomerFacts]:
    """Facts of the customers with id in [lo, hi] (and in ``ids`` when given).

    ``needed``: the ``customer.*`` field paths conditions read; ``at``: the moment derived
    fields (age, days_inactive, counts over the last N days) are computed for in ``fact``.
    When a field that changes with time is read, each customer also gets a ``Timeline`` with
    what it takes to work it out at any moment in (``since``, ``at``] (``facts_at``).
    """
    names = {p.split(".", 1)[1] for p in needed if p.startswith("customer.")}
    # Attribute keys conditions read. Without a reason to hold the whole dict, only these are
    # taken out of the JSON, in SQL: decoding every customer's attributes (a few hundred
    # bytes of JSON each) was the largest single cost of loading a chunk. ``churn_risk``
    # falls back on the attribute of that name (``_timed_values``), so it is one more key:
    # nothing else of the whole dict is read (a missing key and a JSON null are alike to
    # every condition, ``engine.language.conditions``).
    keys = [] if with_attributes else sorted(
        {n[len("attributes.") :] for n in names if n.startswith("attributes.")}
        | ({"churn_risk"} if "churn_risk" in names else set()))
    extra_cols = [getattr(Customer, n) for n in PLAIN if n in names or (n == "birthday" and "age" in names)
                  or (n == "last_active_at" and "days_inactive" in names)
                  or (n == "created_at" and "tenure_days" in names)]
    cols: list[Any] = [*BASE_COLUMNS, *extra_cols]
    if with_attributes:
        cols.append(Customer.attributes)
    elif keys:
        cols.append(_attribute_values(session, keys))
    wanted = set(ids) if ids is not None else None
    rows = fetch_rows(session, select(*cols).where(id_filter(col(Customer.id), lo, hi, ids)))
    out: dict[int, CustomerFacts] = {}
    extra_names = [c.key for c in extra_cols]
    reaches: dict[tuple[Any, ...], tuple[Reach, dict[str, Any]]] = {}
    # The attribute values come back as JSON text, the same few texts for most of a chunk
    # (every key absent, most often): each distinct one is decoded once.
    decoded: dict[str, tuple[tuple[str, Any], ...]] = {}
    for row in rows:
        cid = row[0]
        if wanted is not None and cid not in wanted:
            continue
        # Few distinct combinations of zone, consent and contact: share one Reach for each
        # (it is frozen and never changed) instead of building three objects per customer.
        raw = (row[3], row[6:18])
        known = reaches.get(raw)
        if known is None:
            shape = (row[3], bool(row[6]), bool(row[7]), bool(row[8]), bool(row[9]), bool(row[10]), bool(row[11]),
                     bool(row[12]), bool(row[13]),
                     # marketing consent: empty (never given apart) follows the channel's
                     *(row[i] is None or bool(row[i]) for i in (14, 15, 16, 17)))
            known = reaches[raw] = (Reach(
                timezone=row[3],
                consent={"sms": shape[1], "wechat": shape[2], "email": shape[3], "push": shape[7]},
                reachable={"sms": shape[4], "email": shape[5], "wechat": shape[6], "push": shape[8]},
                marketing={"sms": shape[9], "wechat": shape[10], "email": shape[11], "push": shape[12]},
            ), {
                "customer.timezone": row[3],
                "customer.consent_sms": shape[1], "customer.consent_wechat": shape[2],
                "customer.consent_email": shape[3], "customer.has_phone": shape[4],
                "customer.has_email": shape[5], "customer.has_wechat": shape[6],
            })
        reach, common = known
        if with_attributes:
            attributes = dict(row[-1] or {})
        elif keys:
            values = row[-1]
            if isinstance(values, str):
                pairs = decoded.get(values)
                if pairs is None:
                    pairs = tuple((k, v) for k, v in zip(keys, json.loads(values) or (), strict=False) if v is not None)
                    # Only texts with no array or object inside: a mutable value is never shared.
                    if values.count("[") == 1 and "{" not in values:
                        decoded[values] = pairs
                # A dict of its own per customer: an update step changes it in place.
                attributes = dict(pairs)
            else:
                if isinstance(values, bytes):
                    values = json.loads(values)
                attributes = {k: v for k, v in zip(keys, values or (), strict=False) if v is not None}
        else:
            attributes = {}
        fact: dict[str, Any] = {"customer.tier": row[2], "customer.locale": row[4], **common}
        for i, name in enumerate(extra_names):
            fact[f"customer.{name}"] = row[len(BASE_COLUMNS) + i]
        for key, value in attributes.items():
            fact[f"customer.attributes.{key}"] = value
        out[cid] = CustomerFacts(cid, row[1], row[2], row[3], row[4], row[5], reach, attributes, fact)
    _derived(session, lo, hi, ids, names, at, out, as_utc(since) if since is not None else as_utc(at))
    return out


def _attribute_values(session: Session, keys: list[str]) -> Any:
    """A column holding the JSON array of ``Customer.attributes[k]`` for each of ``keys``
    (null where absent). JSON true/false stay booleans, which a plain ``json_extract`` of one
    key on SQLite would turn into 1/0."""
    if session.get_bind().dialect.name == "postgresql":
        return func.json_build_array(*[col(Customer.attributes).op("->")(literal(k)) for k in keys])
    # With two or more paths SQLite's json_extract returns a JSON array (one path would
    # return the bare SQL value), so a single key is asked for twice.
    paths = [f'$."{k}"' for k in keys] * (2 if len(keys) == 1 else 1)
    return func.json_extract(Customer.attributes, *paths)


def _derived(
    session: Session, lo: int, hi: int, ids: Sequence[int] | None, names: set[str], at: datetime,
    out: dict[int, CustomerFacts], since: datetime,
) -> None:
    if not out:
        return
    at = as_utc(at)
    timed = names & TIMED
    if timed:
        dated = tuple(sorted(timed & set(DATED)))
        for facts in out.values():
            facts.timeline = Timeline(dated=dated)
    policy_fields = {"product_lines", "policy_count", "active_policy_count", "annual_premium_total"}
    if names & policy_fields:
        lines: dict[int, set[str]] = defaultdict(set)
        counts: dict[int, list[float]] = defaultdict(lambda: [0, 0, 0.0])
        rows = fetch_rows(session, select(
            Policy.customer_id, Policy.product_line, Policy.status, Policy.annual_premium).where(
            id_filter(col(Policy.customer_id), lo, hi, ids)))
        for cid, line, status, premium in rows:
            c = counts[cid]
            c[0] += 1
            if status == "active":
                lines[cid].add(line)
                c[1] += 1
                c[2] += premium or 0.0
        for cid, facts in out.items():
            c = counts.get(cid, [0, 0, 0.0])
            facts.fact["customer.product_lines"] = sorted(lines.get(cid, ()))
            facts.fact["customer.policy_count"] = int(c[0])
            facts.fact["customer.active_policy_count"] = int(c[1])
            facts.fact["customer.annual_premium_total"] = float(c[2])
    if "claim_count" in names:
        _count_fact(session, lo, hi, ids, out, "claim_count", Claim.customer_id)
    # Counts over the last N days and latest values: the rows themselves, by time, so that each
    # moment of the run is judged on the rows up to it (and only those).
    for name, event_type in (("logins_90d", "app.login"), ("replies_90d", "message.replied")):
        if name in names:
            _timeline_counts(session, out, name, select(Event.customer_id, Event.occurred_at).where(
                id_filter(col(Event.customer_id), lo, hi, ids), Event.type == event_type,
                col(Event.occurred_at) > since - COUNT_WINDOWS[name], col(Event.occurred_at) <= at))
    if "marketing_touches_7d" in names:
        _timeline_counts(session, out, "marketing_touches_7d", select(Touch.customer_id, Touch.due_at).where(
            id_filter(col(Touch.customer_id), lo, hi, ids), Touch.category == "marketing",
            col(Touch.status).not_in([TouchStatus.CANCELLED, DROPPED]),
            col(Touch.due_at) > since - COUNT_WINDOWS["marketing_touches_7d"], col(Touch.due_at) <= at))
    if "last_nps" in names:
        _timeline_latest(out, "last_nps", (
            (cid, when, score) for cid, score, when in session.execute(
                select(SurveyAnswer.customer_id, SurveyAnswer.score, SurveyAnswer.answered_at).where(
                    id_filter(col(SurveyAnswer.customer_id), lo, hi, ids), SurveyAnswer.kind == "nps",
                    col(SurveyAnswer.answered_at) <= at,
                ).order_by(col(SurveyAnswer.answered_at), col(SurveyAnswer.id))).all()))
    if "churn_risk" in names:
        rows = session.execute(
            select(Event.customer_id, Event.data, Event.occurred_at).where(
                id_filter(col(Event.customer_id), lo, hi, ids), Event.type == "churn.warning",
                col(Event.occurred_at) <= at,
            ).order_by(col(Event.occurred_at), col(Event.id))
        ).all()
        _timeline_latest(out, "churn_risk", (
            (cid, when, data["risk"]) for cid, data, when in rows if (data or {}).get("risk") is not None))
    if timed:
        for facts in out.values():
            assert facts.timeline is not None
            _timed_values(facts.fact, facts.attributes, facts.timeline, at)


def _timeline_counts(session: Session, out: dict[int, CustomerFacts], name: str, stmt: Any) -> None:
    """``name`` in each customer's timeline: the times of the rows ``stmt`` selects (customer, time)."""
    times: dict[int, list[datetime]] = defaultdict(list)
    for cid, when in fetch_rows(session, stmt):
        times[cid].append(as_utc(when))
    for cid, facts in out.items():
        assert facts.timeline is not None
        facts.timeline.counts[name] = sorted(times.get(cid, ()))


def _timeline_latest(out: dict[int, CustomerFacts], name: str, rows: Iterable[tuple[int, datetime, Any]]) -> None:
    """``name`` in each customer's timeline from (customer, time, value) rows in time order."""
    series: dict[int, tuple[list[datetime], list[Any]]] = {}
    for cid, when, value in rows:
        times, values = series.setdefault(cid, ([], []))
        times.append(as_utc(when))
        values.append(value)
    for cid, facts in out.items():
        assert facts.timeline is not None
        facts.timeline.latest[name] = series.get(cid, ([], []))


def _count_fact(
    session: Session, lo: int, hi: int, ids: Sequence[int] | None, out: dict[int, CustomerFacts], name: str,
    customer_id: Any, *conditions: Any,
) -> None:
    """``customer.<name>``: how many rows meeting ``conditions`` each customer has, counted by
    one grouped query for the whole chunk (0 for a customer with none)."""
    counts = dict(session.execute(
        select(customer_id, func.count()).where(id_filter(col(customer_id), lo, hi, ids), *conditions)
        .group_by(customer_id)
    ).all())
    for cid, facts in out.items():
        facts.fact[f"customer.{name}"] = int(counts.get(cid, 0))


def policy_fact(row: Any) -> dict[str, Any]:
    """``policy.*`` of a row with the columns of ``POLICY_FACT_COLUMNS``."""
    return {
        "policy.product_line": row.product_line, "policy.annual_premium": row.annual_premium,
        "policy.start_date": row.start_date, "policy.expiry_date": row.expiry_date,
        "policy.status": row.status, "policy.renewed": row.status == "renewed",
        "policy.premium_due_date": row.premium_due_date, "policy.grace_period_end": row.grace_period_end,
        "policy.external_id": row.external_id,
    }


# The policy columns ``policy_fact`` reads, for the queries that select them.
POLICY_FACT_COLUMNS: tuple[Any, ...] = (
    Policy.product_line, Policy.annual_premium, Policy.start_date, Policy.expiry_date, Policy.status,
    Policy.premium_due_date, Policy.grace_period_end, Policy.external_id)


def claim_fact(amount: Any, status: Any, filed_at: Any, settled_at: Any, product_line: Any,
               external_id: Any = None) -> dict[str, Any]:
    fact = {
        "claim.amount": amount, "claim.status": status, "claim.filed_at": filed_at,
        "claim.settled_at": settled_at, "claim.product_line": product_line,
    }
    if external_id is not None:
        fact["claim.external_id"] = external_id
    return fact


def about_another(scope: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether an event is about another policy or claim than the enrollment whose scope this is: an
    enrollment about one policy (a policy date entry, an event naming it) waits for and reaches its goal
    on that policy's events only (a premium paid on one policy ends no reminder about another); an event
    naming none, or an enrollment about none, concerns them all."""
    for kind in ("policy", "claim"):
        named, own = data.get(f"{kind}_id"), scope.get(f"{kind}.external_id")
        if named not in (None, "") and own is not None and str(named) != str(own):
            return True
    return False


def event_fact(event_type: str, occurred_at: datetime, data: dict[str, Any] | None) -> dict[str, Any]:
    fact: dict[str, Any] = {"event.type": event_type, "event.occurred_at": occurred_at}
    for key, value in (data or {}).items():
        fact[f"event.data.{key}"] = value
    return fact


def customer_fields(paths: Iterable[str]) -> set[str]:
    return {p for p in paths if p.startswith("customer.")}
