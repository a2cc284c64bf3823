"""Agent and supervisor pages: the inbox, a task with its customer context, outcomes, reassignment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from console import csrf, tasks
from console.auth import CurrentUser, clock_of
from console.deps import db_url, user_with
from console.i18n import DISPLAY_ZONE
from console.tasks import OUTCOMES, RevealLimited, TaskConflict, TaskForbidden, TaskInvalid, reveal_policy
from console.web import flash, redirect, render
from store.clock import utcnow, zone

router = APIRouter(dependencies=[Depends(csrf.protect)])

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
    "generic": "The task could not be changed.",
}


# How far back the supervisor page looks for bursts of reveals by the team.
BURST_LOOKBACK = timedelta(hours=24)


def _tasks_user(request: Request) -> CurrentUser:
    return user_with(request, "tasks")


@router.get("/inbox", response_class=HTMLResponse)
def inbox_page(request: Request, page: int = 0) -> HTMLResponse:
    user = _tasks_user(request)
    now = utcnow()
    box = tasks.inbox(user, page=page, page_size=request.app.state.settings.page_size, now=now,
                      db_url=db_url(request))
    return render(request, "inbox.html", user, box=box, now=now)


def _task_page(request: Request, user: CurrentUser, task_id: int, revealed: dict[str, str] | None = None,
               refusal: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    info = tasks.detail(user, task_id, db_url=db_url(request))
    members = tasks.team_members(user, db_url=db_url(request)) if info.can_reassign else []
    response = render(request, "task.html", user, status_code=status_code, info=info, revealed=revealed,
                      refusal=refusal, outcomes=OUTCOMES, now=utcnow(), members=members)
    if refusal and refusal.get("retry_after"):
        response.headers["Retry-After"] = str(refusal["retry_after"])
    return response


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: int) -> HTMLResponse:
    return _task_page(request, _tasks_user(request), task_id)


@router.post("/tasks/{task_id}/reveal", response_class=HTMLResponse)
def reveal(request: Request, task_id: int) -> HTMLResponse:
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
def claim(request: Request, task_id: int) -> RedirectResponse:
    user = _tasks_user(request)
    try:
        tasks.claim(user, task_id, db_url=db_url(request))
        flash(request, "Task claimed.", "ok")
    except (TaskConflict, TaskInvalid) as exc:
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
    return moment if moment.tzinfo else moment.replace(tzinfo=zone(DISPLAY_ZONE))


@router.post("/tasks/{task_id}/complete", response_class=RedirectResponse)
def complete(
    request: Request,
    task_id: int,
    outcome: Annotated[str, Form(max_length=32)] = "",
    notes: Annotated[str, Form(max_length=4000)] = "",
    callback_at: Annotated[str, Form(max_length=40)] = "",
) -> RedirectResponse:
    user = _tasks_user(request)
    try:
        done = tasks.complete(user, task_id, outcome, notes=notes, callback_at=parse_local(callback_at),
                              db_url=db_url(request))
    except (TaskConflict, TaskInvalid) as exc:
        flash(request, ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["generic"]), "error")
        return redirect(f"/tasks/{task_id}")
    flash(request, "Outcome recorded.", "ok")
    if done.follow_up_task_id is not None:
        flash(request, "A follow-up task was scheduled.", "info")
    return redirect(f"/tasks/{done.next_task_id}" if done.next_task_id else "/inbox")


@router.post("/tasks/{task_id}/reassign", response_class=RedirectResponse)
def reassign(
    request: Request, task_id: int, to_user_id: Annotated[int, Form()], back: Annotated[str, Form()] = "/supervisor"
) -> RedirectResponse:
    user = user_with(request, "reassign")
    try:
        tasks.reassign(user, task_id, to_user_id, db_url=db_url(request))
        flash(request, "Task reassigned.", "ok")
    except (TaskConflict, TaskInvalid) as exc:
        flash(request, ERROR_MESSAGES.get(exc.code, ERROR_MESSAGES["generic"]), "error")
    return redirect(back if back.startswith("/") and not back.startswith("//") else "/supervisor")


@router.get("/supervisor", response_class=HTMLResponse)
def supervisor_page(request: Request, agent: int | None = None) -> HTMLResponse:
    user = user_with(request, "team")
    now = utcnow()
    url = db_url(request)
    loads = tasks.team_load(user, now=now, db_url=url)
    members = tasks.team_members(user, db_url=url)
    agent_tasks: list[tasks.TaskRow] = []
    agent_name = None
    if agent is not None:
        member = next((m for m in members if m.id == agent), None)
        if member is None:
            raise HTTPException(status_code=403, detail="forbidden")
        agent_name = member.display_name or member.username
        agent_tasks = tasks.list_tasks(assignee_id=agent, statuses=tasks.ACTIVE, limit=200, now=now, db_url=url)
    overdue = tasks.overdue_tasks(user, now=now, db_url=url)
    policy = reveal_policy(request.app.state.settings)
    # The team's own members only: who else unmasks customers is the admin's audit page's business.
    bursts = tasks.reveal_bursts(policy, since=now - BURST_LOOKBACK,
                                 actors=[m.username for m in members], db_url=url)
    return render(request, "supervisor.html", user, loads=loads, overdue=overdue, members=members,
                  agent_tasks=agent_tasks, agent_id=agent, agent_name=agent_name, now=now, bursts=bursts,
                  policy=policy)
