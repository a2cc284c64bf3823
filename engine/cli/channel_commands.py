"""``journeys preview``: a template rendered for a real customer, with personal data masked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from engine.cli.output import err, out, warn_if_no_secret
from store.masking import mask_email, mask_name, mask_phone, mask_text

if TYPE_CHECKING:  # rendering loads SQLModel, Jinja and Babel: only `journeys preview` imports it
    from sqlmodel import Session

    from channels.base import RenderedMessage
    from store.models import Claim, Policy

    _OwnedRow = TypeVar("_OwnedRow", Policy, Claim)


def register(app: typer.Typer) -> None:
    app.command("preview")(preview_command)


def _mask(text: str, names: tuple[str, ...]) -> str:
    """Phone numbers, e-mails and ID numbers anywhere, and the customer's own name, masked."""
    for name in names:
        text = text.replace(name, mask_name(name))
    return mask_text(text)


def preview_command(
    template: str = typer.Argument(..., help="Template name (a folder under templates/)."),
    customer: str = typer.Option(..., "--customer", help="The customer's external id."),
    channel: str | None = typer.Option(None, "--channel", help="sms | wechat | email | task (default: all the "
                                                               "template has)."),
    locale: str | None = typer.Option(None, "--locale", help="zh-CN | en (default: the customer's)."),
    templates: Path | None = typer.Option(None, "--templates", help="Templates folder (default: the versions in "
                                                                    "force, as the console's preview)."),
    event: str | None = typer.Option(
        None, "--event", help='The triggering event as JSON, e.g. \'{"type": "complaint.filed", "data": '
                              '{"text": "..."}}\' (what an event-entry journey\'s messages and call scripts see).'),
    policy: str | None = typer.Option(None, "--policy", help="The customer's policy to use (external id)."),
    claim: str | None = typer.Option(None, "--claim", help="The customer's claim to use (external id)."),
) -> None:
    """Render TEMPLATE (its version in force) for a customer from the store; names, numbers and addresses
    are shown masked."""
    from sqlmodel import select

    from channels.optout import UNSUBSCRIBE_PATH, public_url
    from channels.template_files import LOCALES, available_templates, template_file
    from console.ops_preview import renderer_in_force, templates_in_force
    from engine.language.paths import templates_dir
    from engine.language.rendering import RENDER_CHANNELS, RenderError, build_context, renderer
    from store.db import session_scope
    from store.models import Claim, Customer, Event, Policy

    preview_kinds = (*RENDER_CHANNELS, "task")
    root = templates or templates_in_force()  # what customers get, not an edit awaiting review
    if not (root / template / "meta.yaml").is_file():
        if templates is None and (templates_dir() / template / "meta.yaml").is_file():
            err.print(f"template {template!r} has no approved version yet (journeys review list)", markup=False)
            raise typer.Exit(2)
        known = ", ".join(available_templates(root)[:15])
        err.print(f"unknown template {template!r}" + (f" (known: {known}, …)" if known else ""), markup=False)
        raise typer.Exit(2)
    if channel is not None and channel not in preview_kinds:
        err.print(f"unknown channel {channel!r}: use one of {', '.join(preview_kinds)}", markup=False)
        raise typer.Exit(2)
    if locale is not None and locale not in LOCALES:
        err.print(f"unknown locale {locale!r}: use one of {', '.join(LOCALES)}", markup=False)
        raise typer.Exit(2)
    event_type, event_data = _event_option(event) if event is not None else (None, None)
    kinds = [channel] if channel else [
        k for k in preview_kinds if any(template_file(root, template, k, loc).is_file() for loc in LOCALES)
    ]
    failures = 0
    # As customers get it: the approved footer with the approved templates (a given folder: the file's footer).
    rend = renderer(templates) if templates is not None else renderer_in_force()
    with session_scope() as session:
        row = session.exec(select(Customer).where(Customer.external_id == customer)).first()
        if row is None:
            err.print(f"no customer with external id {customer!r}", markup=False)
            raise typer.Exit(1)
        names = (row.name,) if row.name else ()
        # Once there is something to show: a command that fails says only why, in one line.
        warn_if_no_secret("unsubscribe links are shown as a placeholder (…/PREVIEW), and dispatch cannot sign them")
        assert row.id is not None
        policy_row = _customers_own(session, Policy, "policy", policy, customer, row.id)
        claim_row = _customers_own(session, Claim, "claim", claim, customer, row.id)
        event_row = None
        if event_type is not None:
            from store.clock import utcnow

            moment = utcnow()
            # Not stored: the event exists only for this preview.
            event_row = Event(external_id="preview", type=event_type, customer_id=row.id, data=event_data or {},
                              occurred_at=moment, received_at=moment)
        out.print(f"template {template} · customer {customer} ({mask_name(row.name)}, tier {row.tier or '-'}, "
                  f"locale {row.locale})", markup=False)
        for kind in kinds:
            address = {"sms": mask_phone(row.phone), "email": mask_email(row.email),
                       "wechat": "openid on file" if row.wechat_openid else ""}.get(kind, "")
            out.print(f"\n── {kind}" + (f" → {address}" if address else ""), markup=False)
            # Masked in the data itself: masking the rendered text missed what a filter re-encodes
            # ({{ customer|tojson }} showed the name as \u escapes).
            context = build_context(session, row, channel=kind if kind != "task" else None, event=event_row,
                                    policy=policy_row, claim=claim_row, masked=True)
            if kind == "task":
                from console.scripts import with_claim_of_event

                context = with_claim_of_event(context)  # as the agent's task page does
            if context.unsubscribe_url is None:
                # Without JOURNEYS_SECRET_KEY no real link can be signed; a preview still shows where it goes.
                context = replace(context, unsubscribe_url=f"{public_url()}{UNSUBSCRIBE_PATH}PREVIEW")
            try:
                if kind == "task":
                    script = rend.render_task_script(template, context, locale)
                    out.print(_mask(script, names), markup=False)
                else:
                    _show(rend.render(template, kind, context, locale), names)
            except RenderError as exc:
                failures += 1
                err.print(_mask(str(exc), names), markup=False)
                if event_row is None and "'event' is undefined" in exc.reason:
                    err.print("hint: the template reads the triggering event; give one with --event "
                              '\'{"type": "...", "data": {...}}\'', markup=False)
    if failures:
        raise typer.Exit(1)


def _customers_own(session: Session, model: type[_OwnedRow], noun: str, external_id: str | None,
                   customer: str, customer_id: int) -> _OwnedRow | None:
    """The customer's own policy or claim named by ``--policy``/``--claim`` (None when not given); exits 1
    when the customer has no such row, so a preview never shows another customer's record."""
    if external_id is None:
        return None
    from sqlmodel import select

    found = session.exec(select(model).where(model.external_id == external_id,
                                             model.customer_id == customer_id)).first()
    if found is None:
        err.print(f"customer {customer!r} has no {noun} {external_id!r}", markup=False)
        raise typer.Exit(1)
    return found


def _event_option(text: str) -> tuple[str, dict[str, Any]]:
    """``--event``: a JSON object with ``type`` and optional ``data`` (an object); exits 2 when it is not."""
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        err.print(f"--event is not JSON: {exc}", markup=False)
        raise typer.Exit(2) from None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str) or not value["type"].strip():
        err.print('--event must be a JSON object with a "type", e.g. {"type": "complaint.filed", "data": {...}}',
                  markup=False)
        raise typer.Exit(2)
    unknown = sorted(set(value) - {"type", "data"})
    if unknown:
        err.print(f"--event: unknown key(s) {', '.join(unknown)}: give the event's fields inside \"data\"",
                  markup=False)
        raise typer.Exit(2)
    data = value.get("data", {})
    if not isinstance(data, dict):
        err.print('--event: "data" must be a JSON object', markup=False)
        raise typer.Exit(2)
    from engine.language.catalogue import EVENT_TYPES

    if value["type"] not in EVENT_TYPES:
        err.print(f"note: {value['type']!r} is not one of the catalogue's event types ({', '.join(EVENT_TYPES)})",
                  markup=False)
    return value["type"], data


def _show(message: RenderedMessage, names: tuple[str, ...]) -> None:
    from channels.sms_segments import sms_length

    out.print(f"locale {message.locale}", markup=False)
    if message.channel == "sms":
        length = sms_length(message.text)
        out.print(_mask(message.text, names), markup=False)
        out.print(f"[{length.segments} segment(s), {length.encoding}, {len(message.text)} characters, "
                  f"{length.units} units]", markup=False)
    elif message.channel == "email":
        out.print(f"Subject: {_mask(message.subject, names)}", markup=False)
        out.print(_mask(message.text, names), markup=False)
        out.print(f"[HTML part: {len(message.html)} characters]", markup=False)
    else:
        out.print(f"template_id: {message.wechat_template_id}", markup=False)
        if message.wechat_url:
            out.print(f"url: {message.wechat_url}", markup=False)
        for key, value in message.wechat_data.items():
            out.print(f"{key}: {_mask(value, names)}", markup=False)
