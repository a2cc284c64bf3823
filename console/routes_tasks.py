"""Agent and supervisor pages: the inbox, a task with its customer context, outcomes, reassignment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf, supervision, tasks, text_rules
from console.auth import CurrentUser, clock_of
from console.deps import FormRowId, RowId, db_url, user_with
from console.i18n import DISPLAY_ZONE
from console.tasks import RevealLimited, TaskConflict, TaskForbidden, TaskInvalid, TaskNotFound, reveal_policy
from console.web import flash, redirect, render
from engine.language.settings_model import CLOSING_OUTCOMES
from store.clock import out_of_range, utcnow, zone
from store.models import TIERS

# Every form: its CSRF token first, then no control character in any field or query parameter
# (console.text_rules).
router = APIRouter(dependencies=[Depends(csrf.protect), Depends(text_rules.check_request)])

# Flash texts for refusals the agent can act on (msgids in the catalogues).
ERROR_MESSAGES = {
    "not_open": "This task is no longer open.",
    "already_claimed": "Someone else claimed this task first.",
    "already_taken": "Someone else completed or took this task first.",
    "not_active": "This task is already closed.",
    "unknown_outcome": "Choose one of the outcomes.",
    "callback_time_required": "Give the time to call back.",
    "callback_time_range": "The call-back time must be in the future (at most 90 days ahead).",
    "bad_assignee": "Choose an active agent.",
    "claim_first": "Claim this task before recording an outcome.",
    "outcome_not_offered": "This outcome is not offered for this queue.",
    "lacks_skills": "The agent does not have the skills this task needs.",
    "advisor_only": "This diamond customer's tasks go to their own advisor only.",
    "other_team": "Choose an agent of your team.",
    "generic": "The task could not be changed.",
}


# How far back the supervisor page looks for bursts of reveals by the team.
BURST_LOOKBACK = timedelta(hours=24)


def _tasks_user(request: Request) -> CurrentUser:
    return user_with(request, "tasks")


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(
    request: Request,
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
    queue: Annotated[str, Query(max_length=32)] = "",
    tier: Annotated[str, Query(max_length=16)] = "",
    overdue: Annotated[str, Query(max_length=1)] = "",
    due_today: Annotated[str, Query(max_length=1)] = "",
    customer: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    user = _tasks_user(request)
    now = utcnow()
    filters = tasks.InboxFilter(queue=queue.strip() or None, tier=tier if tier in TIERS else None,
                                overdue=overdue == "1", due_today=due_today == "1",
                                customer=customer.strip() or None)
    box = tasks.inbox(user, page=page, page_size=request.app.state.settings.page_size, now=now, filters=filters,
                      db_url=db_url(request))
    return render(request, "inbox.html", user, box=box, now=now, tiers=TIERS)


def _task_page(request: Request, user: CurrentUser, task_id: int, revealed: dict[str, str] | None = None,
               refusal: dict[str, Any] | None = None, status_code: int = 200,
               confirm: dict[str, str] | None = None, typed: dict[str, str] | None = None) -> HTMLResponse:
    """The task page; ``typed`` is what the agent typed in the outcome form, shown again in it (or, if the form is
    gone because the task closed meanwhile, beside it to copy)."""
    info = tasks.detail(user, task_id, db_url=db_url(request))
    members = tasks.team_members(user, db_url=db_url(request)) if info.can_reassign else []
    response = render(request, "task.html", user, status_code=status_code, info=info, revealed=revealed,
                      refusal=refusal, now=utcnow(), members=members, confirm=confirm, typed=typed or {},
                      max_attempts=tasks.MAX_ATTEMPTS)
    if refusal and refusal.get("retry_after"):
        response.headers["Retry-After"] = str(refusal["retry_after"])
    return response


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: RowId) -> HTMLResponse:
    return _task_page(request, _tasks_user(request), task_id)


@router.post("/tasks/{task_id}/reveal", response_class=HTMLResponse)
def reveal(request: Request, task_id: RowId) -> HTMLResponse:
    user = _tasks_user(request)
    try:
        # Rendered straight into the response (never stored in the session or a redirect URL).
        shown = tasks.reveal(user, task_id, policy=reveal_policy(request.app.state.settings), now=clock_of(request),
                             db_url=db_url(request))
    except RevealLimited as exc:
        refusal = {"code": exc.code, "limit": exc.limit, "minutes": -(-exc.retry_after // 60),
                   "retry_after": exc.retry_after}
        return _task_page(request, user, task_id, refusal=refusal, status_code=exc.status)
    except TaskForbidden as exc:
        # The task is the user's to see (the page shows why the details stay masked), not to unmask.
        return _task_page(request, user, task_id, refusal={"code": exc.code}, status_code=exc.status)
    return _task_page(request, user, task_id, revealed=shown)


@router.post("/tasks/{task_id}/claim", response_class=RedirectResponse)
def claim(request: Request, task_id: RowId) -> RedirectResponse:
    user = _tasks_user(request)
    try:
        tasks.claim(user, task_id, db_url=db_url(request))
        flash(request, "Task claimed.", "ok")
    except TaskNotFound:
        # A colleague claimed it since the agent opened it, so it is no longer hers to see: back to
        # her inbox with a word rather than a "no such page". Said the same for an id that never was
        # hers, so nothing tells which ids exist.
        flash(request, ERROR_MESSAGES["not_open"], "error")
        return redirect("/inbox")
    except (TaskConflict, TaskInvalid) as exc:
        try:
            task = tasks.detail(user, task_id, db_url=db_url(request)).task
        except TaskNotFound:
            # Lost the race by a hair: open when she asked, a colleague's by the time it was written.
            flash(request, ERROR_MESSAGES["already_claimed"], "error")
            return redirect("/inbox")
        if task.status == "claimed" and task.assignee_id == user.id:
            # A double click, or a second tab: the first claim was hers, which is what she asked for.
            flash(request, "Task claimed.", "ok")
        else:
            flash(request, ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["generic"]), "error")
    return redirect(f"/tasks/{task_id}")


def parse_local(value: str) -> datetime | None:
    """A ``datetime-local`` form value, read in the console's display zone."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if out_of_range(moment):  # unreadable as a callback time, like any other bad value
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone(DISPLAY_ZONE))


@router.post("/tasks/{task_id}/complete", response_model=None)
def complete(
    request: Request,
    task_id: RowId,
    outcome: Annotated[str, Form(max_length=32)] = "",
    notes: Annotated[str, Form(max_length=4000), text_rules.ONE_BREAK] = "",
    callback_at: Annotated[str, Form(max_length=40)] = "",
    confirmed: Annotated[str, Form(max_length=1)] = "",
) -> RedirectResponse | HTMLResponse:
    user = _tasks_user(request)
    try:
        return _record_outcome(request, user, task_id, outcome, notes, callback_at, confirmed)
    except TaskNotFound as exc:
        # Her supervisor gave the task to someone else during the call: it is no longer hers to see, but
        # the call's notes are hers and go back to her to copy. The same page for an id never hers (with
        # what was sent), so nothing tells which ids exist.
        flash(request, ERROR_MESSAGES["not_open"], "error")
        return render(request, "error.html", user, status_code=exc.status, status=exc.status,
                      unsaved_notes=notes.strip())


def _record_outcome(request: Request, user: CurrentUser, task_id: int, outcome: str, notes: str, callback_at: str,
                    confirmed: str) -> RedirectResponse | HTMLResponse:
    typed = {"notes": notes, "callback_at": callback_at}
    if confirmed == "0":
        # "No, go back" on the question below: the form again, with what was typed in it.
        return _task_page(request, user, task_id, typed=typed)
    if outcome in CLOSING_OUTCOMES and confirmed != "1":
        # An outcome that closes the task for good is asked again (with the notes kept) before it
        # is recorded: a slip of the finger on a phone must not close a complaint.
        return _task_page(request, user, task_id, confirm={"outcome": outcome, **typed})
    try:
        done = tasks.complete(user, task_id, outcome, notes=notes, callback_at=parse_local(callback_at),
                              require_claim=True, db_url=db_url(request))
    except (TaskConflict, TaskInvalid) as exc:
        # The page again, not a redirect to it: the notes of a call (up to 4,000 characters, too many for the
        # session's cookie) must not be lost to a call-back time out of range or to a colleague closing the task.
        flash(request, ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["generic"]), "error")
        return _task_page(request, user, task_id, typed=typed, status_code=exc.status)
    flash(request, "Outcome recorded.", "ok")
    if done.follow_up_task_id is not None:
        flash(request, "A follow-up task was scheduled.", "info")
    return redirect(f"/tasks/{done.next_task_id}" if done.next_task_id else "/inbox")


@router.post("/tasks/{task_id}/reassign", response_class=RedirectResponse)
def reassign(
    request: Request, task_id: RowId, to_user_id: FormRowId, back: Annotated[str, Form()] = "/supervisor"
) -> RedirectResponse:
    user = user_with(request, "reassign")
    try:
        tasks.reassign(user, task_id, to_user_id, db_url=db_url(request))
        flash(request, "Task reassigned.", "ok")
    except (TaskConflict, TaskInvalid) as exc:
        flash(request, ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["generic"]), "error")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "/supervisor")


def _work_filter(queue: str, agent: str, state: str) -> supervision.WorkFilter:
    return supervision.WorkFilter(queue=queue.strip() or None, agent=int(agent) if agent.isdigit() else None,
                                  state=state if state in supervision.STATES else None)


@router.get("/supervisor", response_class=HTMLResponse)
def supervisor_page(
    request: Request,
    queue: Annotated[str, Query(max_length=32)] = "",
    agent: Annotated[str, Query(max_length=12)] = "",
    state: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> HTMLResponse:
    user = user_with(request, "team")
    now = utcnow()
    url = db_url(request)
    members = supervision.team_members(user, db_url=url)
    filters = _work_filter(queue, agent, state)
    if filters.agent is not None and all(m.id != filters.agent for m in members):
        raise HTTPException(status_code=403, detail="forbidden")
    rows, more = supervision.worklist(user, filters, now=now, page=page, db_url=url)
    days = supervision.compliance_by_day(user, now=now, db_url=url)
    policy = reveal_policy(request.app.state.settings)
    # The team's own members only: who else unmasks customers is the admin's audit page's business.
    bursts = tasks.reveal_bursts(policy, since=now - BURST_LOOKBACK,
                                 actors=[m.username for m in members], db_url=url)
    agents = supervision.agent_figures(user, now=now, db_url=url)
    rate = supervision.AgentFigures.rate
    return render(request, "supervisor.html", user, now=now, members=members, filters=filters, rows=rows, more=more,
                  page=page, backlog=supervision.backlog(user, now=now, db_url=url), agents=agents, days=days,
                  loads={a.id: a.load for a in agents},
                  met_today=rate(sum(a.met_today for a in agents), sum(a.done_today for a in agents)),
                  met_week=rate(sum(a.met_week for a in agents), sum(a.done_week for a in agents)),
                  chart=supervision.chart(days), bursts=bursts, policy=policy,
                  agent_name=next((m.display_name or m.username for m in members if m.id == filters.agent), None))


# Why tasks of a bulk assignment stayed where they were (msgids).
REFUSALS = {
    "forbidden": "%(n)d task(s) are not your team's.",
    "lacks_skills": "%(n)d task(s) need a skill the agent does not have.",
    "advisor_only": "%(n)d task(s) are a diamond customer's, for their own advisor only.",
    "not_active": "%(n)d task(s) were already closed.",
    "already_taken": "%(n)d task(s) were taken by someone else meanwhile.",
    "other_team": "%(n)d task(s) could not go to an agent of another team.",
}


@router.post("/supervisor/assign", response_class=RedirectResponse)
def assign(
    request: Request,
    to_user_id: FormRowId,
    task_ids: Annotated[list[int], Form(max_length=tasks.MAX_BULK)] = [],  # noqa: B006 (FastAPI reads the default)
    back: Annotated[str, Form(max_length=300)] = "/supervisor",
) -> RedirectResponse:
    user = user_with(request, "reassign")
    target = back if back.startswith("/supervisor") and not back.startswith("//") else "/supervisor"
    if not task_ids:
        flash(request, "Choose the tasks to assign.", "error")
        return redirect(target)
    try:
        done = tasks.assign_many(user, task_ids, to_user_id, db_url=db_url(request))
    except TaskInvalid as exc:
        flash(request, ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["generic"]), "error")
        return redirect(target)
    if done.assigned:
        flash(request, "%(n)d task(s) assigned.", "ok", n=len(done.assigned))
    for code, n in sorted(done.refused.items()):
        flash(request, REFUSALS.get(code, "%(n)d task(s) could not be assigned."), "error", n=n)
    return redirect(target)
