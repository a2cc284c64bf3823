"""Review pages: changes waiting for approval, one version against the version in force, and the steps on them.

Every action calls ``console.review``, as ``journeys review`` does; a refused step (own change,
not pending, no comment) comes back to the page as a message and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console import csrf, review, text_rules
from console.auth import CurrentUser
from console.deps import RowId, db_url, user_with
from console.web import flash, redirect, render
from engine.language.journey_review import MAX_COMMENT, PENDING, ReviewError, versions
from store.db import session_scope

# Every form: its CSRF token first, then no control character in any field or query parameter
# (console.text_rules).
router = APIRouter(dependencies=[Depends(csrf.protect), Depends(text_rules.check_request)])

# ReviewError codes → what the page says (msgids of the console catalogues).
REFUSALS: dict[str, str] = {
    "own_change": "You submitted this change: someone else must review it.",
    "not_pending": "This version is not waiting for review.",
    "not_approved": "Only an approved version can be put back in force.",
    "already_in_force": "This version is already in force.",
    "comment_required": "Write a comment for the record.",
    "comment_too_long": "The comment is too long.",
    "not_found": "No such version.",
    "no_right": "You may not do this.",
    "unknown_user": "You may not do this.",
}
DONE: dict[str, str] = {
    "approve": "Approved: this version is now in force.",
    "reject": "Rejected: the version in force stays.",
    "rollback": "Rolled back: this version is in force again.",
}


@router.get("/ops/review", response_class=HTMLResponse)
def review_list(request: Request) -> HTMLResponse:
    return _list_page(request, user_with(request, "review"))


def _list_page(request: Request, user: CurrentUser, *, refused: review.TemplatesDoNotCompile | None = None,
               status_code: int = 200) -> HTMLResponse:
    with session_scope(db_url(request)) as session:
        every = versions(session)
    pending = [v for v in every if v.state == PENDING]
    in_force = [v for v in every if v.in_force]
    return render(request, "review_list.html", user, status_code=status_code, pending=pending, in_force=in_force,
                  can_approve=user.can("approve"),
                  compile_problems=refused.problems if refused else {},
                  settings_problems=refused.settings if refused else {})


@router.post("/ops/review/submit", response_class=RedirectResponse)
def submit(request: Request) -> Response:
    user = user_with(request, "review")
    try:
        with session_scope(db_url(request)) as session:
            # The page's author must see a refused settings file, not find their change missing later.
            pending = review.submit_changes(session, user.username, refuse_settings=True)
    except review.TemplatesDoNotCompile as exc:
        # Shown on the page itself: the list of file:line problems can be longer than a flash holds.
        return _list_page(request, user, refused=exc, status_code=422)
    flash(request, "%(n)d change(s) waiting for review.", "ok", n=len(pending))
    return redirect("/ops/review")


@router.get("/ops/review/{version_id}", response_class=HTMLResponse)
def review_version(request: Request, version_id: RowId) -> HTMLResponse:
    user = user_with(request, "review")
    with session_scope(db_url(request)) as session:
        try:
            page = review.review_page(session, version_id)
        except ReviewError:
            raise HTTPException(status_code=404) from None
    row = page.change.version
    own = row.submitted_by == user.username
    return render(request, "review_version.html", user, page=page, v=row, own=own, max_comment=MAX_COMMENT,
                  can_approve=user.can("approve"))


def _act(request: Request, version_id: int, action: str, comment: str) -> RedirectResponse:
    user = user_with(request, "approve")
    steps = {"approve": review.approve, "reject": review.reject, "rollback": review.roll_back}
    try:
        with session_scope(db_url(request)) as session:
            steps[action](session, user.username, version_id, comment)
        flash(request, DONE[action], "ok")
    except ReviewError as exc:
        flash(request, REFUSALS.get(exc.code, "You may not do this."), "error")
    return redirect(f"/ops/review/{version_id}")


@router.post("/ops/review/{version_id}/approve", response_class=RedirectResponse)
def approve(request: Request, version_id: RowId,
            comment: Annotated[str, Form(max_length=MAX_COMMENT * 4), text_rules.ONE_BREAK] = "") -> RedirectResponse:
    return _act(request, version_id, "approve", comment)


@router.post("/ops/review/{version_id}/reject", response_class=RedirectResponse)
def reject(request: Request, version_id: RowId,
           comment: Annotated[str, Form(max_length=MAX_COMMENT * 4), text_rules.ONE_BREAK] = "") -> RedirectResponse:
    return _act(request, version_id, "reject", comment)


@router.post("/ops/review/{version_id}/rollback", response_class=RedirectResponse)
def roll_back(request: Request, version_id: RowId,
              comment: Annotated[str, Form(max_length=MAX_COMMENT * 4), text_rules.ONE_BREAK] = "") -> RedirectResponse:
    return _act(request, version_id, "rollback", comment)
