"""A journey's messages rendered for a sample customer: every send step, each of its channels, each locale.

The same ``Renderer`` the sender uses renders them (footer, segment count, locale fallback
included), with ``sample_context``: a made-up customer with every part present, so ops see
what a real one would get without any customer's data on the page. The templates are the versions in
force (``renderer_in_force``, which the test send and ``journeys preview`` use too): an edit awaiting
review is shown on the review page only, from its stored text.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from channels.template_files import LOCALES
from engine.language.journey_model import Journey
from engine.language.rendering import Renderer, renderer
from engine.language.settings_review import delivery_settings
from engine.language.template_context import JourneyView, sample_context
from engine.language.template_review import in_force_folder
from engine.language.templates import RenderError
from store.db import get_engine


@dataclass(frozen=True)
class Preview:
    step: str
    template: str
    channel: str
    locale: str
    subject: str = ""
    text: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    segments: int = 0
    error: str | None = None


def templates_in_force(url: str | None = None) -> Path:
    """The folder of the approved template versions of the store at ``url`` (default: the configured one)."""
    return in_force_folder(get_engine(url))


def footer_in_force(engine: Engine) -> str:
    """The opt-out line marketing SMS end with, as dispatch adds it (``make_dispatcher``): the approved
    delivery settings' (a footer edited in config/delivery.yaml waits for review like a template)."""
    return delivery_settings(engine).marketing_sms_footer


def renderer_in_force(url: str | None = None) -> Renderer:
    """What customers' messages go through: the approved templates and the footer in force."""
    engine = get_engine(url)
    return renderer(in_force_folder(engine), configured_footer=footer_in_force(engine))


def previews(journey: Journey) -> list[Preview]:
    """Every message of ``journey`` rendered as sent (``renderer_in_force``)."""
    render = renderer_in_force().render
    out: list[Preview] = []
    for step in journey.steps:
        if step.send is None:
            continue
        for channel in step.send.listed:
            for locale in LOCALES:
                context = dataclasses.replace(
                    sample_context(locale, (journey.audience.tiers or ["silver"])[0]),
                    journey=JourneyView(journey.id, step.id, journey.category, "sample"),
                )
                try:
                    message = render(step.send.template, channel, context, locale)
                except RenderError as exc:
                    out.append(Preview(step.id, step.send.template, channel, locale, error=str(exc)))
                    continue
                out.append(Preview(step.id, step.send.template, channel, message.locale, subject=message.subject,
                                   text=message.text, fields=tuple(message.wechat_data.items()),
                                   segments=message.segments))
    return out
