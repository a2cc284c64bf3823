"""``journeys review list|show|submit|approve|reject|rollback``: review before going live from the shell.

The same functions as the console's review pages (``console.review``); ``--as`` names the
console user who acts, whose role must hold the right (approving takes compliance or admin) and
who may not approve a change they submitted.
"""

from __future__ import annotations

from typing import Any

import typer

from engine.cli.arguments import LARGEST_ROW_ID, whole_argument
from engine.cli.output import fail, out, print_json, warn_if_no_secret

review_app = typer.Typer(help="Review changes of journeys, templates (template:<name>) and delivery settings "
                              "(setting:<file>) before they go in force.", no_args_is_help=True)

AS_HELP = "The console user who acts (their role must allow it)."


def _info(v: Any) -> dict[str, Any]:
    return {"id": v.id, "kind": v.kind, "journey": v.journey_id, "version": v.version, "state": v.state,
            "in_force": v.in_force,
            "submitted_by": v.submitted_by, "published_at": v.published_at.isoformat(),
            "reviewed_by": v.reviewed_by, "comment": v.comment}


def _print_versions(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    for r in rows:
        mark = " (in force)" if r["in_force"] else ""
        out.print(f"{r['id']:>5}  {r['journey']:<36} {r['version'][:8]}  {r['state']}{mark}  "
                  f"by {r['submitted_by'] or '-'}", markup=False)
    if not rows:
        out.print("no versions", markup=False)


@review_app.command("list")
def review_list(
    journey: str | None = typer.Option(None, help="Only this journey's (or template:<name>, setting:<file>) versions."),
    pending: bool = typer.Option(False, "--pending", help="Only versions waiting for review."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array."),
) -> None:
    """Stored versions of journeys, templates and settings, newest first, with their review state and which
    one is in force."""
    from engine.language.journey_review import PENDING, versions
    from store.db import session_scope

    with session_scope() as session:
        rows = [_info(v) for v in versions(session, journey) if not pending or v.state == PENDING]
    _print_versions(rows, as_json)


# A row id the database can hold: 2**63 or more had ended in SQLite's OverflowError traceback.
VERSION_ID = whole_argument(low=1, high=LARGEST_ROW_ID, help="The version's id (journeys review list)")


@review_app.command("show")
def review_show(
    version_id: int = VERSION_ID,
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """A version: its diff against the version in force and its messages for a sample customer."""
    from console.review import review_page
    from engine.language.journey_review import ReviewError
    from store.db import session_scope

    try:
        with session_scope() as session:
            page = review_page(session, version_id)
    except ReviewError as exc:
        raise fail(str(exc), code=1) from None
    # Once there is something to show: a command that fails says only why, in one line.
    warn_if_no_secret("the messages shown cannot carry a signed unsubscribe link, and dispatch cannot sign them")
    v, base = page.change.version, page.change.in_force
    data = {
        "id": v.id, "journey": v.journey_id, "version": v.version, "state": v.review_state,
        "submitted_by": v.submitted_by, "in_force": base.version if base is not None else None,
        "diff": page.change.diff,
        "messages": [{"step": p.step, "template": p.template, "channel": p.channel, "locale": p.locale,
                      "subject": p.subject, "text": p.text, "error": p.error} for p in page.previews],
    }
    if as_json:
        print_json(data)
        return
    out.print(f"{v.journey_id} {v.version[:8]} {v.review_state}, submitted by {v.submitted_by or '-'}; "
              f"in force: {data['in_force'] or 'none'}", markup=False)
    for line in page.change.diff:
        out.print(line, markup=False)
    for p in page.previews:
        out.print(f"-- {p.step} {p.channel} {p.locale}: {p.error or p.subject or ''}", markup=False)
        if p.text:
            out.print(p.text, markup=False)


@review_app.command("submit")
def review_submit(as_user: str = typer.Option(..., "--as", help=AS_HELP)) -> None:
    """Land the changed journey files, templates and settings as versions signed by this user (who then cannot
    approve them). A template that does not compile or a settings file that fails validate's checks refuses
    the submission whole, as the console's page does: nothing is recorded, exit 1, with the files' problems."""
    from console.review import TemplatesDoNotCompile, submit_changes
    from engine.language.journey_review import ReviewError
    from store.db import session_scope

    try:
        with session_scope() as session:
            rows = [_info(v) for v in submit_changes(session, as_user, refuse_settings=True)]
    except TemplatesDoNotCompile as exc:
        raise fail(str(exc), code=1) from None
    except ReviewError as exc:
        raise fail(str(exc), code=1) from None
    _print_versions(rows, False)


def _act(action: str, version_id: int, as_user: str, comment: str) -> None:
    from console import review
    from engine.language.journey_review import ReviewError
    from store.db import session_scope

    steps = {"approve": review.approve, "reject": review.reject, "rollback": review.roll_back}
    try:
        with session_scope() as session:
            row = steps[action](session, as_user, version_id, comment)
            text = f"{action}: {row.journey_id} {row.version[:8]} is {row.review_state}"
    except ReviewError as exc:
        raise fail(str(exc), code=1) from None
    out.print(text, markup=False)


COMMENT = typer.Option(..., "--comment", "-m", help="Why, for the record (required).")
AS_USER = typer.Option(..., "--as", help=AS_HELP)


@review_app.command("approve")
def review_approve(version_id: int = VERSION_ID, as_user: str = AS_USER, comment: str = COMMENT) -> None:
    """Approve a pending version: it goes in force."""
    _act("approve", version_id, as_user, comment)


@review_app.command("reject")
def review_reject(version_id: int = VERSION_ID, as_user: str = AS_USER, comment: str = COMMENT) -> None:
    """Reject a pending version: the version in force stays."""
    _act("reject", version_id, as_user, comment)


@review_app.command("rollback")
def review_rollback(version_id: int = VERSION_ID, as_user: str = AS_USER, comment: str = COMMENT) -> None:
    """Put an earlier approved version back in force."""
    _act("rollback", version_id, as_user, comment)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
