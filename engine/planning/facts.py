"""Facts about customers, loaded in bulk: the columns conditions read, the derived fields of
``engine.language.catalogue`` and what delivery needs (consent, contact, zone).

Everything is set-based: one query per kind of data per chunk of customers, selected by an
id range (dense chunks) or an id list (sparse ones), never a query per customer. Derived
fields are only computed when some journey in force reads them, so a book whose journeys
read only ``customer.tier`` never touches the policy or event tables here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal
from sqlalchemy import select as _sa_select
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


BASE_COLUMNS = (
    Customer.id, Customer.external_id, Customer.tier, Customer.timezone, Customer.locale, Customer.advisor_id,
    Customer.consent_sms, Customer.consent_wechat, Customer.consent_email,
    Customer.phone, Customer.email, Customer.wechat_openid,
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
) -> dict[int, CustomerFacts]:
    """Facts of the customers with id in [lo, hi] (and in ``ids`` when given).

    ``needed``: the ``customer.*`` field paths conditions read; ``at``: the moment derived
    fields (age, days_inactive, counts over the last N days) are computed for.
    """
    names = {p.split(".", 1)[1] for p in needed if p.startswith("customer.")}
    with_attributes = with_attributes or "churn_risk" in names
    # Attribute keys conditions read. Without a reason to hold the whole dict, only these are
    # taken out of the JSON, in SQL: decoding every customer's attributes (a few hundred
    # bytes of JSON each) was the largest single cost of loading a chunk.
    keys = [] if with_attributes else sorted(n[len("attributes.") :] for n in names if n.startswith("attributes."))
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
    on = as_utc(at).date()
    out: dict[int, CustomerFacts] = {}
    extra_names = [c.key for c in extra_cols]
    reaches: dict[tuple[Any, ...], tuple[Reach, dict[str, Any]]] = {}
    for row in rows:
        cid = row[0]
        if wanted is not None and cid not in wanted:
            continue
        # Few distinct combinations of zone, consent and contact: share one Reach for each
        # (it is frozen and never changed) instead of building three objects per customer.
        shape = (row[3], bool(row[6]), bool(row[7]), bool(row[8]), bool(row[9]), bool(row[10]), bool(row[11]))
        known = reaches.get(shape)
        if known is None:
            known = reaches[shape] = (Reach(
                timezone=row[3],
                consent={"sms": shape[1], "wechat": shape[2], "email": shape[3]},
                reachable={"sms": shape[4], "email": shape[5], "wechat": shape[6]},
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
            if isinstance(values, str | bytes):
                values = json.loads(values)
            attributes = {k: v for k, v in zip(keys, values or (), strict=False) if v is not None}
        else:
            attributes = {}
        fact: dict[str, Any] = {"customer.tier": row[2], "customer.locale": row[4], **common}
        for i, name in enumerate(extra_names):
            fact[f"customer.{name}"] = row[len(BASE_COLUMNS) + i]
        if "age" in names:
            fact["customer.age"] = _age(fact.get("customer.birthday"), on)
        if "days_inactive" in names and fact.get("customer.last_active_at") is not None:
            fact["customer.days_inactive"] = (on - as_utc(fact["customer.last_active_at"]).date()).days
        if "tenure_days" in names and fact.get("customer.created_at") is not None:
            fact["customer.tenure_days"] = (on - as_utc(fact["customer.created_at"]).date()).days
        for key, value in attributes.items():
            fact[f"customer.attributes.{key}"] = value
        out[cid] = CustomerFacts(cid, row[1], row[2], row[3], row[4], row[5], reach, attributes, fact)
    _derived(session, lo, hi, ids, names, at, out)
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
    out: dict[int, CustomerFacts],
) -> None:
    if not out:
        return
    at = as_utc(at)
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
    for name, event_type in (("logins_90d", "app.login"), ("replies_90d", "message.replied")):
        if name in names:
            _count_fact(session, lo, hi, ids, out, name, Event.customer_id, Event.type == event_type,
                        col(Event.occurred_at) > at - timedelta(days=90), col(Event.occurred_at) <= at)
    if "marketing_touches_7d" in names:
        _count_fact(session, lo, hi, ids, out, "marketing_touches_7d", Touch.customer_id,
                    Touch.category == "marketing", col(Touch.status).not_in([TouchStatus.CANCELLED, DROPPED]),
                    col(Touch.due_at) > at - timedelta(days=7), col(Touch.due_at) <= at)
    if "last_nps" in names:
        nps = _latest(session.execute(
            select(SurveyAnswer.customer_id, SurveyAnswer.score, SurveyAnswer.answered_at).where(
                id_filter(col(SurveyAnswer.customer_id), lo, hi, ids), SurveyAnswer.kind == "nps",
                col(SurveyAnswer.answered_at) <= at,
            )
        ).all())
        for cid, facts in out.items():
            if cid in nps:
                facts.fact["customer.last_nps"] = nps[cid]
    if "churn_risk" in names:
        rows = session.execute(
            select(Event.customer_id, Event.data, Event.occurred_at).where(
                id_filter(col(Event.customer_id), lo, hi, ids), Event.type == "churn.warning",
                col(Event.occurred_at) <= at,
            )
        ).all()
        risk = _latest((cid, data["risk"], when) for cid, data, when in rows if (data or {}).get("risk") is not None)
        for cid, facts in out.items():
            value = risk[cid] if cid in risk else facts.attributes.get("churn_risk")
            if value is not None:
                facts.fact["customer.churn_risk"] = value


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


def _latest(rows: Iterable[tuple[int, Any, datetime]]) -> dict[int, Any]:
    """Each customer's value in its latest (customer, value, moment) row; of rows equally
    late, the first one read."""
    latest: dict[int, tuple[datetime, Any]] = {}
    for cid, value, when in rows:
        if cid not in latest or when > latest[cid][0]:
            latest[cid] = (when, value)
    return {cid: value for cid, (_when, value) in latest.items()}


def policy_fact(row: Any) -> dict[str, Any]:
    """``policy.*`` of a row with product_line, annual_premium, start_date, expiry_date, status."""
    return {
        "policy.product_line": row.product_line, "policy.annual_premium": row.annual_premium,
        "policy.start_date": row.start_date, "policy.expiry_date": row.expiry_date,
        "policy.status": row.status, "policy.renewed": row.status == "renewed",
    }


def claim_fact(amount: Any, status: Any, filed_at: Any, settled_at: Any, product_line: Any) -> dict[str, Any]:
    return {
        "claim.amount": amount, "claim.status": status, "claim.filed_at": filed_at,
        "claim.settled_at": settled_at, "claim.product_line": product_line,
    }


def event_fact(event_type: str, occurred_at: datetime, data: dict[str, Any] | None) -> dict[str, Any]:
    fact: dict[str, Any] = {"event.type": event_type, "event.occurred_at": occurred_at}
    for key, value in (data or {}).items():
        fact[f"event.data.{key}"] = value
    return fact


def customer_fields(paths: Iterable[str]) -> set[str]:
    return {p for p in paths if p.startswith("customer.")}
