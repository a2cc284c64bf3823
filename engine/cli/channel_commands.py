"""``journeys preview``: a template rendered for a real customer, with personal data masked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from sqlmodel import select

from channels.base import RenderedMessage
from channels.optout import UNSUBSCRIBE_PATH, public_url
from channels.sms_segments import sms_length
from channels.template_files import LOCALES, available_templates, template_file
from engine.cli.output import err, out
from engine.language.paths import templates_dir
from engine.language.rendering import RENDER_CHANNELS, RenderError, build_context, render, render_task_script
from store.db import session_scope
from store.masking import mask_email, mask_name, mask_phone, mask_text
from store.models import Customer

PREVIEW_KINDS = (*RENDER_CHANNELS, "task")


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
    templates: Path | None = typer.Option(None, "--templates", help="Templates folder (default: templates/)."),
) -> None:
    """Render TEMPLATE for a customer from the store; names, numbers and addresses are shown masked."""
    root = templates or templates_dir()
    if not (root / template / "meta.yaml").is_file():
        known = ", ".join(available_templates(root)[:15])
        err.print(f"unknown template {template!r}" + (f" (known: {known}, …)" if known else ""), markup=False)
        raise typer.Exit(2)
    if channel is not None and channel not in PREVIEW_KINDS:
        err.print(f"unknown channel {channel!r}: use one of {', '.join(PREVIEW_KINDS)}", markup=False)
        raise typer.Exit(2)
    if locale is not None and locale not in LOCALES:
        err.print(f"unknown locale {locale!r}: use one of {', '.join(LOCALES)}", markup=False)
        raise typer.Exit(2)
    kinds = [channel] if channel else [
        k for k in PREVIEW_KINDS if any(template_file(root, template, k, loc).is_file() for loc in LOCALES)
    ]
    failures = 0
    with session_scope() as session:
        row = session.exec(select(Customer).where(Customer.external_id == customer)).first()
        if row is None:
            err.print(f"no customer with external id {customer!r}", markup=False)
            raise typer.Exit(1)
        names = (row.name,) if row.name else ()
        out.print(f"template {template} · customer {customer} ({mask_name(row.name)}, tier {row.tier or '-'}, "
                  f"locale {row.locale})", markup=False)
        for kind in kinds:
            address = {"sms": mask_phone(row.phone), "email": mask_email(row.email),
                       "wechat": "openid on file" if row.wechat_openid else ""}.get(kind, "")
            out.print(f"\n── {kind}" + (f" → {address}" if address else ""), markup=False)
            context = build_context(session, row, channel=kind if kind != "task" else None)
            if context.unsubscribe_url is None:
                # Without JOURNEYS_SECRET_KEY no real link can be signed; a preview still shows where it goes.
                context = replace(context, unsubscribe_url=f"{public_url()}{UNSUBSCRIBE_PATH}PREVIEW")
            try:
                if kind == "task":
                    script = render_task_script(template, context, locale=locale, root=root)
                    out.print(_mask(script, names), markup=False)
                else:
                    _show(render(template, kind, context, locale=locale, root=root), names)
            except RenderError as exc:
                failures += 1
                err.print(f"error: {_mask(str(exc), names)}", markup=False)
    if failures:
        raise typer.Exit(1)


def _show(message: RenderedMessage, names: tuple[str, ...]) -> None:
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
