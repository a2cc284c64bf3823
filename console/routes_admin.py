"""Admin pages: users (create, deactivate, shift, set a password) and the audit log with bursts of reveals flagged."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session, col, select

from console import csrf, tasks, text_rules, usernames
from console.auth import UnknownLocale, audit, clock_of, create_user, deactivate_user, set_password
from console.deps import RowId, db_url, user_with
from console.i18n import SUPPORTED, Translator
from console.labels import AUDIT_KEYS, FORM_FIELDS, VERSION_KINDS, VERSION_STEPS
from console.text_rules import blank
from console.web import flash, redirect, render
from engine.language.settings_model import SKILLS
from store.clock import as_utc
from store.db import session_scope
from store.masking import mask_text
from store.models import ROLES, AppUser, AuditLog, Customer

# Every form: its CSRF token first, then no control character in any field or query parameter
# (console.text_rules).
router = APIRouter(dependencies=[Depends(csrf.protect), Depends(text_rules.check_request)])

# Audit actions that show (or tried to show) customer data unmasked, or took it out of the system.
UNMASKING_ACTIONS = (*tasks.REVEAL_ACTIONS, "export")
AUDIT_PAGE_ROWS = 200
# What was typed in the add-user form (all but the password), kept in the session for the page the refusal
# redirects to, so the admin corrects one field instead of typing the whole form again.
TYPED_KEY = "admin_users_typed"
MAX_LOOKBACK_HOURS = 7 * 24


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request) -> HTMLResponse:
    user = user_with(request, "users")
    with session_scope(db_url(request)) as session:
        users = list(session.exec(select(AppUser).order_by(col(AppUser.username))).all())
    typed = request.session.pop(TYPED_KEY, None)
    # Locked out by failed logins, as `journeys users list` says it: what an admin unlocks by setting a password.
    now = clock_of(request)
    locked = {u.id: u.locked_until for u in users if u.locked_until is not None and as_utc(u.locked_until) > now}
    return render(request, "admin_users.html", user, users=users, roles=ROLES, locales=list(SUPPORTED),
                  skills=SKILLS, username_pattern=usernames.HTML_PATTERN, username_max=usernames.MAX_LENGTH,
                  typed=typed if isinstance(typed, dict) else {}, locked=locked)


@router.post("/admin/users", response_class=RedirectResponse)
def add_user(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=16)],
    display_name: Annotated[str, Form(max_length=128)] = "",
    team: Annotated[str, Form(max_length=64)] = "",
    locale: Annotated[str, Form(max_length=10)] = "zh-CN",
    skill: Annotated[list[str], Form(max_length=len(SKILLS))] = [],  # noqa: B006 (FastAPI reads the default)
) -> RedirectResponse:
    admin = user_with(request, "users")
    name = username.strip()
    # Until the user is added: a refusal below, or the skills' 422, goes back to the form with this in it.
    request.session[TYPED_KEY] = {"username": username, "display_name": display_name, "role": role, "team": team,
                                  "locale": locale, "skill": skill}
    if set(skill) - set(SKILLS):
        # As the skills form refuses it: a skill dropped without a word leaves the new agent unrouted.
        raise HTTPException(status_code=422, detail="skill")
    try:
        with session_scope(db_url(request)) as session:
            refusal = usernames.problem(session, name)
            if refusal is not None:
                flash(request, refusal, "error", max=usernames.MAX_LENGTH, name=name)
                return redirect("/admin/users")
            # console.text_rules: a display name or team that shows nothing is left out.
            created = create_user(session, name, password, role,
                                  display_name="" if blank(display_name) else display_name.strip(),
                                  team=None if blank(team) else team.strip(),
                                  locale=locale)
            created.skills = [s for s in SKILLS if s in skill]
            session.add(created)
            audit(session, admin.username, "user_add", "user", created.id or 0, {"role": role})
        request.session.pop(TYPED_KEY, None)
        flash(request, "User %(name)s added.", "ok", name=name)
    except UnknownLocale:
        flash(request, "Unknown language.", "error")
    except ValueError:
        flash(request, "The user could not be added: check the name (unique), role and password (8+ characters, "
                      "not blank, not one character repeated).",
              "error")
    return redirect("/admin/users")


@router.post("/admin/users/{user_id}/skills", response_class=RedirectResponse)
def set_skills(request: Request, user_id: RowId,
               skill: Annotated[list[str], Form(max_length=len(SKILLS))] = []) -> RedirectResponse:  # noqa: B006
    """Replace a user's skills (what queues and task types may require: config/queues.yaml)."""
    admin = user_with(request, "users")
    unknown = sorted(set(skill) - set(SKILLS))
    if unknown:
        raise HTTPException(status_code=422, detail="skill")
    chosen = [s for s in SKILLS if s in skill]  # the vocabulary's order, whatever the form's
    with session_scope(db_url(request)) as session:
        row = session.get(AppUser, user_id)
        if row is None:
            raise HTTPException(status_code=404, detail="not_found")
        before = list(row.skills or [])
        row.skills = chosen
        session.add(row)
        audit(session, admin.username, "user_skills", "user", user_id, {"before": before, "after": chosen})
    flash(request, "Skills of %(name)s saved.", "ok", name=row.username)
    return redirect("/admin/users")


@router.post("/admin/users/{user_id}/password", response_class=RedirectResponse)
def new_password(request: Request, user_id: RowId,
                 password: Annotated[str, Form(max_length=1024)]) -> RedirectResponse:
    """A new password for a user who forgot theirs or was locked out: what `journeys users passwd` does
    (console.auth.set_password: the account unlocked, every session it had ended), audited as it audits."""
    admin = user_with(request, "users")
    try:
        with session_scope(db_url(request)) as session:
            row = session.get(AppUser, user_id)
            if row is None:
                raise HTTPException(status_code=404, detail="not_found")
            name = row.username
            set_password(session, name, password, now=clock_of(request))
            audit(session, admin.username, "user_password", "user", user_id)
    except ValueError:
        flash(request, "The password was not set: it needs 8 or more characters, not blank and not one character "
                       "repeated.", "error")
        return redirect("/admin/users")
    flash(request, "Password of %(name)s set: the account is unlocked and its sessions are ended.", "ok", name=name)
    return redirect("/admin/users")


@router.post("/admin/users/{user_id}/toggle", response_class=RedirectResponse)
def toggle(request: Request, user_id: RowId, what: Annotated[str, Form()]) -> RedirectResponse:
    admin = user_with(request, "users")
    if what not in ("active", "on_shift"):
        raise HTTPException(status_code=422, detail="what")
    with session_scope(db_url(request)) as session:
        row = session.get(AppUser, user_id)
        if row is None:
            raise HTTPException(status_code=404, detail="not_found")
        if row.id == admin.id and what == "active":
            flash(request, "You cannot deactivate yourself.", "error")
            return redirect("/admin/users")
        if what == "active" and row.active:
            # As `journeys users disable` does: every session the user holds ends too. Only clearing the
            # flag left their cookies valid, working again as soon as the account was re-enabled.
            deactivate_user(session, row.username, now=clock_of(request))
        else:
            setattr(row, what, not getattr(row, what))
            session.add(row)
        audit(session, admin.username, f"user_{what}", "user", user_id, {what: getattr(row, what)})
    return redirect("/admin/users")


def _shown(text: str, limit: int) -> str:
    # Actors of failed logins are whatever was typed as a user name, details are free-form:
    # mask anything that looks like a phone, ID number or e-mail before an admin reads it.
    return mask_text(text)[:limit]


def _action(t: Translator, action: str) -> str:
    """An audit action in the reader's words; a review step as its kind and step (``setting_version_published``)."""
    kind, versioned, step = action.partition("_version_")
    if versioned and kind in VERSION_KINDS and step in VERSION_STEPS:
        return f"{t.label('version_kind', kind)}: {t.label('version_step', step)}"
    return t.label("audit_action", action)


def _target(t: Translator, target_type: str, target_id: str, customers: dict[str, str]) -> str:
    """An audit target in the reader's words, its number beside; the one test list has none to show. A customer
    is audited by the store's row number, which no page shows: named by the id the pages and the API know."""
    word = t.label("audit_target", target_type)
    if target_type == "customer":
        return f"{word} {customers.get(target_id, target_id)}"
    return word if target_type == "seed_list" else f"{word} {target_id}"


def _customer_ids(session: Session, rows: list[AuditLog]) -> dict[str, str]:
    """The external id of each customer the audit rows name by row number, in one statement."""
    numbers = {int(r.target_id) for r in rows if r.target_type == "customer" and r.target_id.isdigit()}
    if not numbers:
        return {}
    found = session.exec(select(Customer.id, Customer.external_id).where(col(Customer.id).in_(numbers))).all()
    return {str(number): external for number, external in found}


VERSION_KEYS = ("version", "replaced")


def _detail(t: Translator, detail: dict[str, Any]) -> str:
    """An audit detail in the reader's words: known keys and field names translated, the rest as written."""
    def word(value: object) -> str:
        if isinstance(value, bool):
            return t("yes") if value else t("no")
        return t.label("form_field", value) if isinstance(value, str) and value in FORM_FIELDS else str(value)

    def shown(key: str, value: object) -> str:
        if key in VERSION_KEYS and isinstance(value, str):
            return value[:8]  # a version's hash, cut as every review page shows it
        if value is None:
            return "—"
        if key == "tier" and isinstance(value, str):
            return t.label("tier", value)
        if key == "reason" and isinstance(value, str):
            return t.label("audit_reason", value)
        if key == "until" and isinstance(value, str):
            try:  # a lockout's end, in the zone the page's "when" column is in
                return t.datetime(datetime.fromisoformat(value))
            except ValueError:
                return value
        return "/".join(map(word, value)) if isinstance(value, list) else word(value)

    # A review step's subject ("journey") is named in the target column, by its name; a test send's results per
    # recipient are for the page that shows them (its "sent" says how many went).
    return ", ".join(f"{t(AUDIT_KEYS[k]) if k in AUDIT_KEYS else k}: {shown(k, v)}" for k, v in detail.items()
                     if k not in ("journey", "results"))


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(request: Request, kind: str = "unmasking", actor: Annotated[str, Query(max_length=64)] = "",
               hours: int = 24) -> HTMLResponse:
    admin = user_with(request, "audit")
    kind = kind if kind in ("unmasking", "all") else "unmasking"
    hours = min(max(hours, 1), MAX_LOOKBACK_HOURS)
    now = clock_of(request)
    url = db_url(request)
    policy = tasks.reveal_policy(request.app.state.settings)
    bursts = tasks.reveal_bursts(policy, since=now - timedelta(hours=hours), db_url=url)
    flagged = {b.actor for b in bursts}
    stmt = select(AuditLog)
    if kind == "unmasking":
        stmt = stmt.where(col(AuditLog.action).in_(UNMASKING_ACTIONS))
    if actor:
        stmt = stmt.where(AuditLog.actor == actor)
    entries: list[dict[str, Any]] = []
    t = Translator(admin.locale)
    with session_scope(url) as session:
        rows = list(session.exec(stmt.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
                                 .limit(AUDIT_PAGE_ROWS)))
        customers = _customer_ids(session, rows)
        for row in rows:
            entries.append({
                "at": row.at, "actor": row.actor, "shown_actor": _shown(row.actor, 64), "action": row.action,
                "action_words": _action(t, row.action),
                "target": _shown(_target(t, row.target_type, row.target_id, customers), 100),
                # A template is read by its name in the admin's language (console.template_names), its code aside.
                "template": _shown(row.target_id, 64) if row.target_type == "template" else None,
                # A reviewed version's journey, template or settings file (journey_name words all three).
                "subject": (row.detail or {}).get("journey") if row.target_type.endswith("_version") else None,
                "detail": _shown(_detail(t, row.detail or {}), 300),
                "unmasking": row.action in UNMASKING_ACTIONS, "flagged": row.actor in flagged,
            })
    return render(request, "admin_audit.html", admin, entries=entries, bursts=bursts, policy=policy, kind=kind,
                  actor=actor, hours=hours, max_rows=AUDIT_PAGE_ROWS)
