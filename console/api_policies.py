"""REST API for policies and claims: ``GET``/``PUT /api/policies/{external_id}`` and ``/api/claims/{external_id}``.

The fields and their rules are those of ``journeys import policies|claims`` (docs/import.md), read by
the import's own cell parsers and cross-field checks (``store.importing.fields``), so a value the
CSV import refuses is refused here too, with the same reason, as a 422 naming the field.

``PUT`` upserts on the external id (201 created, 200 updated). A field in the body is authoritative
(``null`` clears an optional one); a field left out leaves the stored value alone, as a column left
out of an import file does. Creating needs the fields the import requires. The owning customer (and
a claim's policy) is named by external id. Like the customer endpoints: a system key only (a
personal key is refused), the body capped by console.limits, every change audited with the key's name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from console.api import _TOO_LARGE, _UNAUTHENTICATED, _UNREADABLE, KeyOnly, Principal, _refusal, _refuse_new_stand_in
from console.api_customers import _CUSTOMER_REFUSED
from console.auth import audit
from console.strict_json import StrictJSONRoute
from console.text_rules import Body, Id, id_problem
from store.clock import as_utc, utcnow, zone
from store.db import session_scope
from store.importing import DEFAULT_ASSUMED_TZ, REQUIRED
from store.importing import fields as f
from store.models import PRODUCT_LINES, Claim, Customer, Policy

router = APIRouter(prefix="/api", tags=["api"], route_class=StrictJSONRoute)


def _cell(column: str, parse: Callable[[str], Any], *, required: bool = False) -> BeforeValidator:
    """The import's parser for ``column`` applied to a JSON value, as to the text of a CSV cell."""

    def check(value: object) -> object:
        if value is None:
            if required:
                raise ValueError(f"{column} is empty")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{column} must be a string or a number")
        try:
            return parse(str(value))
        except f.FieldError as exc:
            raise ValueError(str(exc)) from None
        except OverflowError:  # a far date-time whose offset takes it out of datetime's range
            raise ValueError(f"{column} is out of range") from None

    return BeforeValidator(check)


def _date(column: str, *, required: bool = False) -> BeforeValidator:
    return _cell(column, lambda raw: f.iso_date(column, raw), required=required)


def _moment(column: str, *, required: bool = False) -> BeforeValidator:
    # Without an offset it is read in the import's default zone (--assume-tz).
    return _cell(column, lambda raw: f.iso_datetime(column, raw, zone(DEFAULT_ASSUMED_TZ)), required=required)


def _amount(column: str) -> BeforeValidator:
    return _cell(column, lambda raw: f.amount(column, raw), required=True)


def _choice(column: str, allowed: tuple[str, ...], *, required: bool = False) -> BeforeValidator:
    return _cell(column, lambda raw: f.choice(column, raw, allowed), required=required)


def _id(column: str, raw: str) -> str:
    value = f.text(column, f.required(column, raw), 64)
    wrong = id_problem(value)
    if wrong:
        raise f.FieldError(f"{column} {wrong}")
    return value


def _reference(column: str, *, required: bool = False) -> BeforeValidator:
    return _cell(column, lambda raw: _id(column, raw), required=required)


# ``SkipJsonSchema[None]``: the field may be left out, but null is refused, and the schema says so.
NotNull = SkipJsonSchema[None]
Reference = Annotated[Id, StringConstraints(min_length=1, max_length=64)]
Owner = Annotated[Reference | NotNull, _reference("customer_external_id", required=True),
                  Field(description="The owning customer's external id")]
ProductLine = Literal[PRODUCT_LINES]  # type: ignore[valid-type]
PolicyStatus = Literal[f.POLICY_STATUSES]  # type: ignore[valid-type]
ClaimStatus = Literal[f.CLAIM_STATUSES]  # type: ignore[valid-type]


class PolicyIn(Body):
    """A policy as ``journeys import policies`` takes it; required to create: the import's required columns."""

    customer_external_id: Owner = None
    product_line: Annotated[ProductLine | NotNull, _choice("product_line", PRODUCT_LINES, required=True)] = None
    annual_premium: Annotated[float | NotNull, _amount("annual_premium"),
                              Field(ge=0, description="Yuan per year")] = None
    start_date: Annotated[date | NotNull, _date("start_date", required=True)] = None
    expiry_date: Annotated[date | NotNull, _date("expiry_date", required=True),
                           Field(description="Not before start_date")] = None
    status: Annotated[PolicyStatus | None, _choice("status", f.POLICY_STATUSES),
                      Field(description="null: active")] = None
    premium_due_date: Annotated[date | None, _date("premium_due_date"),
                                Field(description="When the next premium is due (policy.premium_due_date)")] = None
    grace_period_end: Annotated[date | None, _date("grace_period_end"),
                                Field(description="Not before premium_due_date (policy.grace_period_end)")] = None


class ClaimIn(Body):
    """A claim as ``journeys import claims`` takes it; required to create: the import's required columns."""

    customer_external_id: Owner = None
    policy_external_id: Annotated[Reference | None, _reference("policy_external_id"),
                                  Field(description="A policy of the same customer; null: none")] = None
    product_line: Annotated[ProductLine | None, _choice("product_line", PRODUCT_LINES),
                            Field(description="The claim's own; null: its policy's (claim.product_line)")] = None
    filed_at: Annotated[AwareDatetime | NotNull, _moment("filed_at", required=True),
                        Field(description="ISO 8601; without an offset read in Asia/Shanghai")] = None
    settled_at: Annotated[AwareDatetime | None, _moment("settled_at"), Field(description="Not before filed_at")] = None
    amount: Annotated[float | NotNull, _amount("amount"), Field(ge=0, description="Yuan")] = None
    status: Annotated[ClaimStatus | None, _choice("status", f.CLAIM_STATUSES),
                      Field(description="null (or left out on create): settled with settled_at, else filed; "
                                        "settled needs settled_at")] = None


class PolicyOut(BaseModel):
    external_id: str
    customer_external_id: str
    product_line: str
    annual_premium: float
    start_date: date
    expiry_date: date
    status: str
    premium_due_date: date | None
    grace_period_end: date | None
    created: bool = False


class ClaimOut(BaseModel):
    external_id: str
    customer_external_id: str
    policy_external_id: str | None
    product_line: str | None = Field(description="The claim's own product line (null: its policy's applies)")
    filed_at: datetime
    settled_at: datetime | None
    amount: float
    status: str
    created: bool = False


def _problems(problems: list[tuple[str, str]], kind: str = "value_error") -> HTTPException:
    """Every field at fault at once, in FastAPI's validation shape."""
    return HTTPException(status_code=422, detail=[{"type": kind, "loc": ["body", field], "msg": message}
                                                  for field, message in problems])


def _customer_id(session: Session, external_id: str) -> int:
    found = session.exec(select(Customer.id).where(Customer.external_id == external_id)).first()
    if found is None:
        raise _problems([("customer_external_id", f"unknown customer external id {external_id!r}")])
    return found


def _external_id_of(session: Session, model: type[Customer] | type[Policy], row_id: int | None) -> str | None:
    if row_id is None:
        return None
    return session.exec(select(model.external_id).where(model.id == row_id)).one()


def _must_create_with(kind: str, noun: str, given: dict[str, Any]) -> None:
    missing = [c for c in REQUIRED[kind] if c != "external_id" and c not in given]
    if missing:
        raise _problems([(c, f"{c} is required to create a {noun}") for c in missing], "missing")


Row = TypeVar("Row", Policy, Claim)
Out = TypeVar("Out", PolicyOut, ClaimOut)


def _stored(session: Session, model: type[Row], external_id: str, given: dict[str, Any]
            ) -> tuple[Row | None, dict[str, Any]]:
    """The stored row (None: to be created, with the fields the import requires) and its values as
    they will be, which the rules between fields are checked on."""
    row = session.exec(select(model).where(model.external_id == external_id)).first()
    if row is None:
        _refuse_new_stand_in(external_id)
        kind, noun = ("policies", "policy") if model is Policy else ("claims", "claim")
        _must_create_with(kind, noun, given)
    return row, {**(row.model_dump() if row is not None else {}), **given}


def _record(session: Session, who: Principal, row: Policy | Claim, created: bool, fields: list[str]) -> None:
    session.add(row)
    session.flush()
    noun = row.__tablename__
    audit(session, who.actor, f"{noun}_upsert", noun, row.id or 0, {"created": created, "fields": fields},
          at=utcnow())


def _read(url: str | None, model: type[Row], external_id: str, show: Callable[[Session, Row], Out]) -> Out:
    with session_scope(url) as session:
        row = session.exec(select(model).where(model.external_id == external_id)).first()
        if row is None:
            raise HTTPException(status_code=404, detail=f"unknown {model.__tablename__}")
        return show(session, row)


PolicyId = Annotated[Id, Path(min_length=1, max_length=64, description="The policy's external id (policy number)")]
ClaimId = Annotated[Id, Path(min_length=1, max_length=64, description="The claim's external id (claim number)")]
_READ_REFUSALS: dict[int | str, dict[str, Any]] = {401: _UNAUTHENTICATED, 403: _CUSTOMER_REFUSED, 413: _TOO_LARGE}
_WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {400: _UNREADABLE, 401: _UNAUTHENTICATED, 403: _CUSTOMER_REFUSED,
                                                    413: _TOO_LARGE}


def _routes(plural: str, model: type[Row], external_id_type: object, body_model: type[BaseModel],
            out_model: type[Out], show: Callable[[Session, Row], Out],
            write: Callable[[str | None, str, dict[str, Any], Principal], Out]) -> None:
    """``GET`` and ``PUT /api/<plural>/{external_id}`` of one kind of row: shown by ``show``, upserted by ``write``."""
    noun = model.__tablename__

    async def get_one(request: Request, external_id: str, _who: KeyOnly) -> Out:
        return await run_in_threadpool(_read, request.app.state.settings.database_url, model, external_id, show)

    async def put_one(request: Request, response: Response, external_id: str, body: BaseModel,
                      who: KeyOnly) -> Out:
        out = await run_in_threadpool(write, request.app.state.settings.database_url, external_id,
                                      body.model_dump(exclude_unset=True), who)
        if out.created:
            response.status_code = 201
        return out

    # FastAPI takes the path parameter's rules and the body's model from the annotations, which
    # (postponed) it would look up by name among the module's globals: these two are this kind's own.
    get_one.__annotations__["external_id"] = put_one.__annotations__["external_id"] = external_id_type
    put_one.__annotations__["body"] = body_model
    # The names give the operation ids and summaries ("Get Policy") the functions of their own had.
    router.get(f"/{plural}/{{external_id}}", name=f"get_{noun}", response_model=out_model,
               responses={**_READ_REFUSALS, 404: _refusal(f"No {noun} with that id")})(get_one)
    router.put(f"/{plural}/{{external_id}}", name=f"put_{noun}", response_model=out_model,
               responses={201: {"model": out_model, "description": "Created"}, **_WRITE_REFUSALS})(put_one)


# --- policies ---------------------------------------------------------------------------------------


def _policy_out(session: Session, row: Policy, created: bool = False) -> PolicyOut:
    owner = _external_id_of(session, Customer, row.customer_id) or ""
    return PolicyOut(**row.model_dump(exclude={"id", "customer_id"}), customer_external_id=owner, created=created)


def _put_policy(url: str | None, external_id: str, given: dict[str, Any], who: Principal) -> PolicyOut:
    with session_scope(url) as session:
        fields = sorted(given)
        row, values = _stored(session, Policy, external_id, given)
        created = row is None
        problems = f.policy_date_problems(values)
        if problems:
            raise _problems(problems)
        owner = given.pop("customer_external_id", None)
        customer_id = _customer_id(session, owner) if owner is not None else None
        if row is None:
            assert customer_id is not None  # required to create
            row = Policy(external_id=external_id, customer_id=customer_id, **given)
        elif customer_id is not None:
            row.customer_id = customer_id
        for name, value in given.items():
            setattr(row, name, value)
        row.status = row.status or "active"
        _record(session, who, row, created, fields)
        return _policy_out(session, row, created)


_routes("policies", Policy, PolicyId, PolicyIn, PolicyOut, _policy_out, _put_policy)


# --- claims -----------------------------------------------------------------------------------------


def _claim_out(session: Session, row: Claim, created: bool = False) -> ClaimOut:
    return ClaimOut(
        external_id=row.external_id, customer_external_id=_external_id_of(session, Customer, row.customer_id) or "",
        policy_external_id=_external_id_of(session, Policy, row.policy_id), product_line=row.product_line,
        filed_at=as_utc(row.filed_at), settled_at=as_utc(row.settled_at) if row.settled_at else None,
        amount=row.amount, status=row.status, created=created)


def _claims_policy(session: Session, given: dict[str, Any], stored: Claim | None) -> tuple[int | None, int | None]:
    """(policy id, its customer id) the claim will have: the one named, else the stored link."""
    if "policy_external_id" not in given:
        policy_id = stored.policy_id if stored is not None else None
        owner = session.exec(select(Policy.customer_id).where(Policy.id == policy_id)).first() if policy_id else None
        return policy_id, owner
    ref = given["policy_external_id"]
    if ref is None:
        return None, None
    found = session.exec(select(Policy.id, Policy.customer_id).where(Policy.external_id == ref)).first()
    if found is None:
        raise _problems([("policy_external_id", f"unknown policy external id {ref!r}")])
    return found[0], found[1]


def _put_claim(url: str | None, external_id: str, given: dict[str, Any], who: Principal) -> ClaimOut:
    with session_scope(url) as session:
        fields = sorted(given)
        row, values = _stored(session, Claim, external_id, given)
        created = row is None
        # Left out, the stored status stays; null (or left out on create) is derived as the import does.
        values["status"], problems = f.claim_status(values)
        if problems:
            raise _problems(problems)
        owner = given.pop("customer_external_id", None)
        customer_id = _customer_id(session, owner) if owner is not None else row.customer_id  # type: ignore[union-attr]
        policy_id, policy_owner = _claims_policy(session, given, row)
        if policy_id is not None and policy_owner != customer_id:
            ref = given.get("policy_external_id") or _external_id_of(session, Policy, policy_id)
            raise _problems([("policy_external_id", f"policy {ref!r} belongs to another customer")])
        given.pop("policy_external_id", None)
        if row is None:
            row = Claim(external_id=external_id, customer_id=customer_id, **given)
        for name, value in given.items():
            setattr(row, name, value)
        row.customer_id, row.policy_id, row.status = customer_id, policy_id, values["status"]
        _record(session, who, row, created, fields)
        return _claim_out(session, row, created)


_routes("claims", Claim, ClaimId, ClaimIn, ClaimOut, _claim_out, _put_claim)
