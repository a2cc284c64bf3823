"""REST API (OpenAPI at /api/openapi.json).

Systems authenticate with an API key in ``X-API-Key``. The keys come from
``JOURNEYS_API_KEYS`` (parsed by console/config.py): comma-separated entries, each::

    NAME:ROLE:KEY              e.g. crm:system:k7Qm...           (the key itself)
    NAME:ROLE:sha256:HEX       e.g. phones:desk=a+b:sha256:9a1f... (its SHA-256, 64 hex digits)

``NAME`` says who holds the key (the audit log names it ``api:NAME``); ``ROLE`` what it may do:

- ``system``: a back-office system (CRM, survey tool). Posts events, reads and writes
  customers, lists every task; it acts for nobody, so any ``X-Acting-User`` is refused (403).
- ``desk=TEAM[+TEAM...]`` or ``desk=*``: a desk integration such as a phone system. A system
  key that may also act for the *agents* (role ``agent``) of the named teams (``*``: of every
  team): it names one in ``X-Acting-User`` to list, claim and complete that agent's tasks.
  Any other user, unknown or inactive ones included, is refused (403).
- ``agent`` or ``supervisor``: one person's own key. ``NAME`` is their console username and
  their account must be active and have that role. It uses the task endpoints as that user
  only (``X-Acting-User`` left out or naming the owner; anyone else → 403) and may not post
  events or touch customers (403).

The old forms, a bare ``KEY`` or ``sha256:HEX`` (told apart by having no colon), are still
accepted as ``system`` keys named ``legacy-1``, ``legacy-2``, ... with no acting rights;
startup logs a warning naming each by the first digits of its digest. A malformed entry is
logged by its position and ignored. Keys are compared as SHA-256 digests in constant time.

The task endpoints also accept a signed-in console session (``X-Acting-User`` is then
ignored); unsafe calls made that way must carry the session's CSRF token in ``X-CSRF-Token``.
Every refusal is ``{"detail": "<reason>"}`` except 422, which always has FastAPI's validation
shape ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``; the OpenAPI lists every
status code each route answers with.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from console import csrf, queues, tasks
from console.auth import SESSION_USER, CurrentUser, NotAuthenticated, load_user
from console.config import ApiKey, hash_api_key
from console.deps import RowId
from console.events_bridge import Incoming, UnknownCustomer, emit_async
from console.strict_json import StrictJSONRoute
from console.task_inbox import TaskFacts
from console.tasks import OUTCOMES
from console.text_rules import Body, Id, Text, query_problems
from engine.language import event_types
from engine.language.catalogue import EVENT_TYPES
from engine.language.settings_model import CLOSING_OUTCOMES
from store.clock import out_of_range
from store.db import session_scope
from store.models import AppUser
from store.retention_keys import stand_in_problem

router = APIRouter(prefix="/api", tags=["api"], route_class=StrictJSONRoute)


# --- authentication -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    kind: Literal["key", "session"]
    # The user the call acts as: a session's user, a personal key's owner or a desk key's agent.
    user: CurrentUser | None
    key: ApiKey | None = None

    @property
    def actor(self) -> str:
        """The caller as the audit log names it."""
        if self.key is not None:
            return f"api:{self.key.name}"
        return self.user.username if self.user is not None else "api"


class ErrorOut(BaseModel):
    """Every refusal except 422: the reason, e.g. ``invalid API key`` or ``already_claimed``."""

    detail: str


def _refusal(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description, **extra}


_UNAUTHENTICATED = _refusal("No valid API key (nor, where accepted, a signed-in session)",
                            headers={"WWW-Authenticate": {"schema": {"type": "string"},
                                                          "description": "ApiKey, when the key is missing or wrong"}})
_ACTING_REFUSED = "X-Acting-User names a user this key may not act for"
# FastAPI's own answer when reading a body fails otherwise than as JSON (bytes that are not UTF-8, and JSON
# nested too deeply, are 422 json_invalid: console.strict_json).
_UNREADABLE = _refusal("The body cannot be read")
# console.limits answers 413 on any /api route, before the route runs, for a body over the cap.
_TOO_LARGE = _refusal("The request body is over JOURNEYS_MAX_BODY_API bytes (64 KiB by default)")


def _invalid(loc: tuple[str | int, ...], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 in FastAPI's validation shape, the one the OpenAPI documents for every 422."""
    return HTTPException(status_code=422, detail=[{"type": kind, "loc": list(loc), "msg": message}])


def _matching_key(request: Request, presented: str) -> ApiKey | None:
    digest = hash_api_key(presented)
    found: ApiKey | None = None
    for key in request.app.state.settings.api_keys:
        # No early exit: every configured key is compared, so timing says nothing about which matched.
        if hmac.compare_digest(digest, key.digest) and found is None:
            found = key
    return found


def _acting_user(db_url: str | None, key: ApiKey, username: str) -> CurrentUser:
    with session_scope(db_url) as session:
        row = session.exec(select(AppUser).where(AppUser.username == username)).first()
        # One answer for unknown, inactive and not-allowed users, so a key cannot probe who exists.
        if row is None or not row.active or not key.may_act_for(row.username, row.role, row.team):
            detail = f"the key's owner is not an active {key.role}" if key.personal else _ACTING_REFUSED
            raise HTTPException(status_code=403, detail=detail)
        return CurrentUser.of(row)


async def _key_principal(request: Request, key: ApiKey, acting: str | None) -> Principal:
    if key.personal:
        # A person's key is that person: it may name itself, never anybody else.
        if acting and acting != key.name:
            raise HTTPException(status_code=403, detail=_ACTING_REFUSED)
        acting = key.name
    elif not acting:
        return Principal("key", None, key)
    elif key.role != "desk":
        raise HTTPException(status_code=403, detail=_ACTING_REFUSED)
    user = await run_in_threadpool(_acting_user, request.app.state.settings.database_url, key, acting)
    return Principal("key", user, key)


async def principal(request: Request, *, allow_session: bool, acting: str | None = None) -> Principal:
    presented = request.headers.get("x-api-key")
    if presented is not None:
        key = _matching_key(request, presented)
        if key is None:
            raise HTTPException(status_code=401, detail="invalid API key", headers={"WWW-Authenticate": "ApiKey"})
        return await _key_principal(request, key, acting)
    if allow_session and isinstance(request.session.get(SESSION_USER), int):
        await csrf.check(request)
        try:
            return Principal("session", load_user(request))
        except NotAuthenticated:
            pass
    raise HTTPException(status_code=401, detail="missing API key", headers={"WWW-Authenticate": "ApiKey"})


_api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (JOURNEYS_API_KEYS)")
# Declared without constraints so that it can never fail validation: the key is checked first,
# and an unauthenticated caller learns nothing but 401.
ActingUser = Annotated[str | None, Header(
    alias="X-Acting-User",
    description="The console user this call acts for: only with a desk key (an agent of its teams) or a "
                "personal key (its owner); any other user is refused with 403. Ignored for a session.")]


# As dependencies they run before the body is validated, so a bad key is 401 whatever the body.
def _plain_query(request: Request) -> None:
    """No query parameter holds a control character (console.text_rules): checked once the caller is known."""
    errors = query_problems(request)
    if errors:
        raise RequestValidationError(errors)


async def key_only(request: Request, _key: Annotated[str | None, Depends(_api_key_scheme)],
                   acting: ActingUser = None) -> Principal:
    who = await principal(request, allow_session=False, acting=acting)
    _plain_query(request)
    if who.key is not None and who.key.personal:
        raise HTTPException(status_code=403, detail="events and customers need a system key, not a personal one")
    return who


async def key_or_session(request: Request, _key: Annotated[str | None, Depends(_api_key_scheme)],
                         acting: ActingUser = None) -> Principal:
    who = await principal(request, allow_session=True, acting=acting)
    _plain_query(request)
    return who


KeyOnly = Annotated[Principal, Depends(key_only)]
KeyOrSession = Annotated[Principal, Depends(key_or_session)]


# --- events -------------------------------------------------------------------------------------

def _document_event_types(schema: dict[str, Any]) -> None:
    """Each type of ``config/events.yaml`` in the OpenAPI document: an enum of the names, and
    per type its description, data fields and which of them are required, with an example."""
    types = event_types.current()
    prop = schema.setdefault("properties", {}).setdefault("type", {})
    prop["enum"] = sorted(types)
    prop["description"] = "One of the event types of config/events.yaml:\n" + "\n".join(
        f"- `{name}`: {spec.description} Data: "
        + (", ".join(f"{f} ({k}{', required' if f in spec.required else ''})" for f, k in spec.fields.items())
           or "none")
        for name, spec in sorted(types.items()))
    schema["x-event-types"] = {name: {"description": spec.description, "fields": dict(spec.fields),
                                      "required": list(spec.required)} for name, spec in sorted(types.items())}


Checked = TypeVar("Checked")


def _refused_unless(accepts: Callable[[Checked], bool], refusal: Callable[[Checked], str]) -> AfterValidator:
    """A field's rule beyond its type: a value ``accepts`` turns down is a 422 saying ``refusal(value)``."""

    def check(value: Checked) -> Checked:
        if not accepts(value):
            raise ValueError(refusal(value))
        return value

    return AfterValidator(check)


KnownEventType = Annotated[str, _refused_unless(
    lambda value: value in EVENT_TYPES,
    lambda value: f"unknown event type {value!r}; known: {', '.join(sorted(EVENT_TYPES))}")]


# A date or a moment outside the years the product takes is refused with a 422 before anything is
# stored: the planner's arithmetic on a year-1 event once failed every later plan.
def _in_range(value: date) -> date:
    wrong = out_of_range(value)
    if wrong:
        raise ValueError(f"{value.isoformat()} {wrong}")
    return value


InRange = AfterValidator(_in_range)
Moment = Annotated[AwareDatetime, InRange]
Day = Annotated[date, InRange]


# An event's id from the sender: not one of the purge's (store.retention_keys), which it renames events to.
EventId = Annotated[Id, _refused_unless(lambda value: stand_in_problem(value) is None,
                                        lambda value: stand_in_problem(value, "event_id") or "")]


class EventIn(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_event_types)

    event_id: EventId = Field(min_length=1, max_length=128, description="Sender's id; a repeated id is ignored.")
    type: KnownEventType = Field(description="One of the known event types, e.g. survey.answered")
    customer_id: Id = Field(min_length=1, max_length=64, description="The customer's external id")
    occurred_at: Moment | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="The type's fields (config/events.yaml)")


class EventOut(BaseModel):
    event_id: str
    created: bool
    touches: int = 0
    tasks: int = 0


def _field_error(field: str, message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=[{"type": "value_error", "loc": ["body", field], "msg": message}])


def _refuse_new_stand_in(external_id: str) -> None:
    """A 422 at the path for a row that a PUT would create under an id of the purge's form
    (``store.retention_keys.stand_in_problem``); a stored row keeps being read and written under its own."""
    if problem := stand_in_problem(external_id):
        raise HTTPException(status_code=422,
                            detail=[{"type": "value_error", "loc": ["path", "external_id"], "msg": problem}])


@router.post("/events", response_model=EventOut, status_code=201,
             responses={200: {"model": EventOut, "description": "Already received (same event_id): nothing new"},
                        400: _UNREADABLE, 401: _UNAUTHENTICATED,
                        403: _refusal(f"A personal key, or {_ACTING_REFUSED}"), 413: _TOO_LARGE})
async def post_event(request: Request, response: Response, body: EventIn, _who: KeyOnly) -> EventOut:
    wrong = event_types.check_payload(body.type, body.data)
    if wrong:  # every field at fault at once, each at body.data.<field>
        raise HTTPException(status_code=422, detail=[
            {"type": "value_error", "loc": ["body", *field.split(".")], "msg": message} for field, message in wrong])
    try:
        # Batched with the requests arriving alongside (one transaction and one planner run for
        # all of them), committed before the answer; the event loop never blocks on the database.
        result = await emit_async(Incoming(body.type, body.customer_id, body.data, body.event_id, body.occurred_at),
                                  request.app.state.settings.database_url)
    except UnknownCustomer:
        raise _field_error("customer_id", f"unknown customer {body.customer_id!r}") from None
    if not result.created:
        response.status_code = 200
    return EventOut(event_id=result.event_id, created=result.created, touches=result.touches, tasks=result.tasks)


# --- tasks --------------------------------------------------------------------------------------


# A dataclass rather than a model so that it extends the desk's own task facts: the API lists a
# task as the inbox does (pydantic documents and checks a dataclass as it does a model).
@dataclass(frozen=True)
class TaskOut(TaskFacts):
    overdue: bool
    # The same as the desk's pages: what the task's queue offers, which of those close the task
    # (the pages ask to confirm them), and where its SLA stands.
    outcomes: Annotated[list[str], Field(description="Outcomes the task's queue offers (config/queues.yaml).")]
    closing_outcomes: Annotated[list[str], Field(description="Those of `outcomes` that close the task for good.")]
    warn_at: Annotated[datetime | None, Field(description="When the assignee and the supervisor are warned before "
                                                          "the SLA is breached (null until the desk has set it).")]
    at_risk: Annotated[bool, Field(description="Past `warn_at` and not yet overdue.")]
    seconds_left: Annotated[int, Field(description="Seconds until `due_at` (negative when overdue).")]


def _task_out(row: tasks.TaskRow, desk: queues.Desk) -> TaskOut:
    offered = queues.outcomes_of(row.queue, desk)
    facts = {f.name: getattr(row, f.name) for f in fields(TaskFacts)}
    return TaskOut(**facts, overdue=row.overdue, outcomes=list(offered),
                   closing_outcomes=[o for o in offered if o in CLOSING_OUTCOMES], warn_at=row.warn_at,
                   at_risk=row.at_risk, seconds_left=math.floor(row.seconds_left))


@router.get("/tasks", response_model=list[TaskOut], responses={
    401: _UNAUTHENTICATED,
    403: _refusal(f"A user without task rights, scope=all for a user, or {_ACTING_REFUSED}"),
    413: _TOO_LARGE,
})
async def list_tasks(
    request: Request,
    who: KeyOrSession,
    scope: Literal["mine", "claimable", "all"] = "mine",
    queue: str | None = None,
    status: Literal["open", "claimed", "done", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[TaskOut]:
    url = request.app.state.settings.database_url
    desk = queues.current()
    if who.user is not None:
        user = who.user
        if not user.can("tasks"):
            raise HTTPException(status_code=403, detail="forbidden")
        if scope == "all":
            raise HTTPException(status_code=403, detail="scope=all needs an API key without an acting user")
        if scope == "mine":
            rows = await run_in_threadpool(lambda: tasks.list_tasks(
                assignee_id=user.id, statuses=(status,) if status else tasks.ACTIVE, limit=limit, offset=offset,
                db_url=url))
        else:
            box = await run_in_threadpool(lambda: tasks.inbox(user, page=0, page_size=limit + offset, db_url=url))
            rows = box.claimable[offset:]
        return [_task_out(r, desk) for r in rows]
    rows = await run_in_threadpool(lambda: tasks.list_tasks(
        queue=queue, statuses=(status,) if status else None, unassigned=scope == "claimable", limit=limit,
        offset=offset, db_url=url))
    return [_task_out(r, desk) for r in rows]


class CompleteIn(Body):
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    notes: Text | None = Field(default=None, max_length=4000)
    callback_at: Moment | None = None


class CompleteOut(BaseModel):
    task_id: int
    outcome: str
    follow_up_task_id: int | None
    next_task_id: int | None


class ClaimOut(BaseModel):
    task_id: int
    status: Literal["claimed"]


def _acting(who: Principal) -> CurrentUser:
    if who.user is None:
        raise _invalid(("header", "X-Acting-User"), "a task is worked by an agent: name them in X-Acting-User",
                       "missing")
    return who.user


# The request field a task refusal with status 422 is about.
_TASK_ERROR_FIELDS = {"unknown_outcome": "outcome", "callback_time_required": "callback_at",
                      "callback_time_range": "callback_at"}


def _task_error(exc: tasks.TaskError) -> HTTPException:
    if exc.status == 422:
        field = _TASK_ERROR_FIELDS.get(exc.code)
        return _invalid(("body", field) if field else ("body",), str(exc), exc.code)
    return HTTPException(status_code=exc.status, detail=exc.code)


_WORK_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: _UNAUTHENTICATED,
    403: _refusal(f"No CSRF token with a session, not this user's task, or {_ACTING_REFUSED}"),
    404: _refusal("No such task, or one this user may not see"),
    409: _refusal("The task is no longer open (already claimed, done or cancelled)"),
    413: _TOO_LARGE,
}


@router.post("/tasks/{task_id}/claim", response_model=ClaimOut, responses=_WORK_REFUSALS)
async def claim_task(request: Request, task_id: RowId, who: KeyOrSession) -> ClaimOut:
    user = _acting(who)
    try:
        await run_in_threadpool(tasks.claim, user, task_id, db_url=request.app.state.settings.database_url)
    except tasks.TaskError as exc:
        raise _task_error(exc) from None
    return ClaimOut(task_id=task_id, status="claimed")


@router.post("/tasks/{task_id}/complete", response_model=CompleteOut,
             responses={400: _UNREADABLE, **_WORK_REFUSALS,
                        409: _refusal("The task is not claimed by this user yet (claim_first: the claim marks "
                                      "the start of the call), or no longer open")})
async def complete_task(request: Request, task_id: RowId, body: CompleteIn, who: KeyOrSession) -> CompleteOut:
    user = _acting(who)
    try:
        done = await run_in_threadpool(
            # As on the desk's pages (README, Agent desk): an outcome only once the task is claimed.
            lambda: tasks.complete(user, task_id, body.outcome, notes=body.notes, callback_at=body.callback_at,
                                   require_claim=True, db_url=request.app.state.settings.database_url))
    except tasks.TaskError as exc:
        raise _task_error(exc) from None
    return CompleteOut(task_id=done.task_id, outcome=done.outcome, follow_up_task_id=done.follow_up_task_id,
                       next_task_id=done.next_task_id)
