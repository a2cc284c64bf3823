"""REST API for customers: ``GET``/``PUT /api/customers/{external_id}``.

The fields and their rules are those of ``journeys import customers`` (docs/import.md): a value the
CSV import refuses is refused here with the same reason, as a 422 naming the field, and what the import
keeps (an anonymised customer's record, a consent the customer withdrew through us) is kept here too
(``store.consent``). A system key only; every change audited with the key's name; the customer is
shown masked (PIPL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field, ValidationInfo, field_validator
from sqlmodel import Session, select

from console.api import (
    _ACTING_REFUSED,
    _TOO_LARGE,
    _UNAUTHENTICATED,
    _UNREADABLE,
    Day,
    KeyOnly,
    Moment,
    _field_error,
    _refusal,
    _refuse_new_stand_in,
    _refused_unless,
)
from console.auth import RIGHTS, audit
from console.strict_json import StrictJSONRoute
from console.text_rules import Body, Id, Name, id_problem
from store.clock import known_zone, utcnow
from store.consent import consent_time_problem, customer_write_refusal, record_consents
from store.db import session_scope
from store.importing import fields as import_fields
from store.importing.reading import attributes_problem
from store.masking import mask_email, mask_name, mask_phone
from store.models import CHANNELS, TIERS, AppUser, Customer, TierChange

router = APIRouter(prefix="/api", tags=["api"], route_class=StrictJSONRoute)


# A customer's fields with a rule beyond their type and length: (accepts the value, why it is refused).
_TEXT_RULES: dict[str, tuple[Callable[[Any], object], Callable[[Any], str]]] = {
    "attributes": (lambda value: attributes_problem(value) is None, lambda value: attributes_problem(value) or ""),
    "tier": (lambda value: value in TIERS, lambda _: f"tier must be one of {', '.join(TIERS)}"),
    "timezone": (known_zone, lambda value: f"unknown time zone {value!r}"),
}


# An order of preference: known channels, each once (the CSV import's rule, so a list the API
# takes is one an import of the same customer takes too).
def _channels_problem(value: list[str] | None) -> str | None:
    if any(item not in CHANNELS for item in value or []):
        return f"channel must be one of {', '.join(CHANNELS)}"
    return import_fields.channel_order_problem(value or [])


KnownChannels = Annotated[list[str] | None, _refused_unless(
    lambda value: _channels_problem(value) is None, lambda value: _channels_problem(value) or "")]


# The advisor's username; empty clears it.
AdvisorName = Annotated[str, _refused_unless(lambda value: value == "" or id_problem(value) is None,
                                             lambda value: id_problem(value) or "")]


class CustomerIn(Body):
    name: Name | None = Field(default=None, min_length=1, max_length=128)
    phone: str | None = Field(default=None, max_length=20, description="A mobile number, stored as E.164: "
                              "+8613812345678, or 13812345678 for a mainland one")
    email: str | None = Field(default=None, max_length=254)
    tier: str | None = None
    branch: Name | None = Field(default=None, max_length=64)
    locale: Literal["zh-CN", "en"] | None = None
    timezone: str | None = Field(default=None, max_length=64)
    birthday: Day | None = None
    advisor: AdvisorName | None = Field(default=None, max_length=64,
                                       description="Username of the dedicated advisor (empty: none)")
    consent_sms: bool | None = None
    consent_wechat: bool | None = None
    consent_email: bool | None = None
    # App push (issue 19): the JPush registration id of the customer's app install, and its consent.
    push_registration_id: Id | None = Field(default=None, min_length=1, max_length=64)
    consent_push: bool | None = None
    # Consent to marketing per channel, apart from the channel's consent to service messages (PIPL Art. 24).
    consent_sms_marketing: bool | None = None
    consent_wechat_marketing: bool | None = None
    consent_email_marketing: bool | None = None
    consent_push_marketing: bool | None = None
    consent_source: Name | None = Field(default=None, max_length=64)
    consent_at: Moment | None = Field(
        default=None, description="When the customer gave the consents of this body (default: now). A consent "
        "the customer withdrew through us (a TD reply, an unsubscribe link) is given back only by a consent "
        "given after the withdrawal; a time in the future is refused")
    preferred_channels: KnownChannels = None
    attributes: dict[str, Any] | None = None

    @field_validator(*_TEXT_RULES)
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        accepts, refusal = _TEXT_RULES[str(info.field_name)]
        if value is not None and not accepts(value):
            raise ValueError(refusal(value))
        return value

    @field_validator("phone", "email", "push_registration_id")
    @classmethod
    def _contact(cls, value: str | None, info: ValidationInfo) -> str | None:
        # As the CSV import reads them: a phone stored as E.164 however given, as inbound SMS match it.
        if value is None:
            return None
        read = {"phone": import_fields.phone, "email": import_fields.email,
                "push_registration_id": import_fields.push_registration_id}[str(info.field_name)]
        try:
            return read(value)
        except import_fields.FieldError as exc:
            raise ValueError(str(exc)) from None  # the number or address masked


class CustomerOut(BaseModel):
    """A customer as the API shows it: phone, e-mail and name masked (PIPL)."""

    external_id: str
    name: str
    phone: str
    email: str
    tier: str | None
    branch: str
    locale: str
    timezone: str
    consent_sms: bool
    consent_wechat: bool
    consent_email: bool
    preferred_channels: list[str]
    created: bool = False


def _customer_out(c: Customer, created: bool = False) -> CustomerOut:
    return CustomerOut(
        external_id=c.external_id, name=mask_name(c.name), phone=mask_phone(c.phone), email=mask_email(c.email),
        tier=c.tier, branch=c.branch, locale=c.locale, timezone=c.timezone, consent_sms=c.consent_sms,
        consent_wechat=c.consent_wechat, consent_email=c.consent_email,
        preferred_channels=list(c.preferred_channels), created=created,
    )


def _advisor_id(session: Session, username: str) -> int | None:
    """The id of an active user who works tasks (RIGHTS: agent, supervisor), else a 422 on ``advisor``.

    A diamond customer's tasks go to their advisor only (console.assignment, console.queues): an
    ops or compliance user there would leave them with nobody who can open them.
    """
    advisor = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if advisor is None:
        raise _field_error("advisor", f"unknown user {username!r}")
    if not advisor.active:
        raise _field_error("advisor", f"user {username!r} is deactivated")
    if "tasks" not in RIGHTS.get(advisor.role, frozenset()):
        raise _field_error("advisor", f"user {username!r} is {advisor.role}, who does not work tasks: "
                                      "an advisor must be an agent or a supervisor")
    return advisor.id


ExternalId = Annotated[Id, Path(min_length=1, max_length=64, description="The customer's external id")]
_CUSTOMER_REFUSED = _refusal(f"A personal key, or {_ACTING_REFUSED}")
_GUARDED = "An anonymised customer, or a consent the customer withdrew (an opt-out) given back: nothing written"


@router.get("/customers/{external_id}", response_model=CustomerOut,
            responses={401: _UNAUTHENTICATED, 403: _CUSTOMER_REFUSED, 404: _refusal("No customer with that id"),
                       413: _TOO_LARGE})
async def get_customer(request: Request, external_id: ExternalId, _who: KeyOnly) -> CustomerOut:
    with session_scope(request.app.state.settings.database_url) as session:
        row = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
        if row is None:
            raise HTTPException(status_code=404, detail="unknown customer")
        return _customer_out(row)


@router.put("/customers/{external_id}", response_model=CustomerOut,
            responses={201: {"model": CustomerOut, "description": "Created"}, 400: _UNREADABLE, 401: _UNAUTHENTICATED,
                       403: _CUSTOMER_REFUSED, 409: _refusal(_GUARDED), 413: _TOO_LARGE})
async def put_customer(request: Request, response: Response, external_id: ExternalId, body: CustomerIn,
                       who: KeyOnly) -> CustomerOut:
    now = utcnow()
    given = body.model_dump(exclude_unset=True)
    given_at = given.pop("consent_at", None)
    if problem := consent_time_problem(given_at, now):
        raise _field_error("consent_at", f"consent_at {problem}")
    with session_scope(request.app.state.settings.database_url) as session:
        row = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
        if refused := customer_write_refusal(row, given, given_at):
            raise HTTPException(status_code=409, detail=refused)
        if created := row is None:
            _refuse_new_stand_in(external_id)
            if not body.name:
                raise _field_error("name", "name is required to create a customer")
            row = Customer(external_id=external_id, name=body.name, created_at=now, updated_at=now)
        if "advisor" in given:
            row.advisor_id = _advisor_id(session, body.advisor) if body.advisor else None
        source = given.pop("consent_source", None) or "api"
        old_tier = None if created else row.tier
        for name in ("name", "phone", "email", "tier", "branch", "locale", "timezone", "preferred_channels",
                     "attributes", "push_registration_id"):
            if name in given and given[name] is not None:
                setattr(row, name, given[name])
        if "birthday" in given:
            row.birthday = body.birthday
            row.birth_md = body.birthday.month * 100 + body.birthday.day if body.birthday else None
        record_consents(row, given, source, given_at or now)
        row.updated_at = now
        moved = given.get("tier") is not None and row.tier != old_tier
        if moved:
            row.tier_updated_at = now
        session.add(row)
        session.flush()
        if moved:
            assert row.id is not None and row.tier is not None  # flushed; a tier given
            # As the import records it: the reports by tier read a customer's tier at a moment from this history.
            session.add(TierChange(customer_id=row.id, from_tier=old_tier, to_tier=row.tier,
                                   score=float(row.tier_score or 0.0), dimensions={}, reason="api", changed_at=now))
        audit(session, who.actor, "customer_upsert", "customer", row.id or 0,
              {"created": created, "fields": sorted(given)}, at=now)
        if created:
            response.status_code = 201
        return _customer_out(row, created)
