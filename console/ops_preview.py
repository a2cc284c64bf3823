"""A journey's messages rendered for a sample customer: every send step, each of its channels, each locale.

The same ``Renderer`` the sender uses renders them (footer, segment count, locale fallback
included), with ``sample_context``: a made-up customer with every part present, so ops see
what a real one would get without any customer's data on the page.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from channels.template_files import LOCALES
from engine.language.journey_model import Journey
from engine.language.rendering import renderer
from engine.language.template_context import JourneyView, sample_context
from engine.language.templates import RenderError


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


def previews(journey: Journey) -> list[Preview]:
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
                    message = renderer().render(step.send.template, channel, context, locale)
                except RenderError as exc:
                    out.append(Preview(step.id, step.send.template, channel, locale, error=str(exc)))
                    continue
                out.append(Preview(step.id, step.send.template, channel, message.locale, subject=message.subject,
                                   text=message.text, fields=tuple(message.wechat_data.items()),
                                   segments=message.segments))
    return out
