"""Review before going live, for people: who may do what, and what the review pages show.

The pages (``console.routes_review``) and ``journeys review`` (``engine.cli.review_commands``)
both call these functions with a user name; the state machine, the four-eyes rule and the audit
rows are ``engine.language.journey_review``'s. Seeing changes and submitting them takes the
``review`` right (ops, compliance, admin); approving, rejecting and rolling back the ``approve``
right (compliance and admin, ``console.auth.RIGHTS``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from channels.template_files import FILE_FOR, LOCALES
from console.auth import RIGHTS
from console.ops_preview import Preview, footer_in_force, previews
from engine.language import queue_config, settings_review, template_review
from engine.language.journey_registry import land_changes
from engine.language.journey_review import (
    PENDING,
    Change,
    ReviewError,
    VersionInfo,
    change,
    decide,
    rollback,
    stored_journey,
    versions,
)
from engine.language.paths import config_dir
from engine.language.problems import Problem
from engine.language.settings_checks import dropped_queue_problems
from engine.language.template_context import sample_context
from engine.language.template_review import TEMPLATE
from engine.language.templates import Renderer, RenderError
from store.models import AppUser, JourneyVersion


def _user(session: Session, username: str, right: str) -> AppUser:
    user = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if user is None or not user.active:
        raise ReviewError("unknown_user", f"no active user {username!r}")
    if right not in RIGHTS.get(user.role, frozenset()):
        raise ReviewError("no_right", f"{username} ({user.role}) does not have the {right} right")
    return user


class TemplatesDoNotCompile(ReviewError):
    """A submission refused whole: template folders that do not compile (``problems``: per folder, its
    ``file:line: message`` lines, the file named within its folder) and settings files their landing
    refuses (``settings``: per file, the same lines)."""

    def __init__(self, problems: dict[str, list[str]], settings: dict[str, list[str]] | None = None) -> None:
        self.problems = problems
        self.settings = settings or {}
        lines = [line for found in (*problems.values(), *self.settings.values()) for line in found]
        super().__init__("templates_do_not_compile",
                         "nothing submitted: these files do not compile or are refused:\n" + "\n".join(lines))


def _compile_problems() -> dict[str, list[str]]:
    return {name: [f"{name}/{Path(p.path).name}:{p.line}: {p.message}" for p in problems]
            for name, problems in template_review.broken_templates().items()}


def _queues_problems(directory: Path) -> list[Problem]:
    """Why ``queues.yaml`` of ``directory`` is not taken: broken, naming in its task types a journey or
    step no journey file holds, or dropping a queue the tier settings name (``queue_config.current`` then
    keeps the desk in force, with only a line in the log)."""
    path = directory / "queues.yaml"
    if not path.is_file():
        return []
    fresh, problems = queue_config.load(path)
    if fresh is None:
        return problems
    if problems := queue_config.task_type_problems(fresh.config, path):
        return problems
    try:
        in_force = queue_config.current(path)
    except queue_config.QueuesConfigError:
        return []
    return dropped_queue_problems(directory / "tiers.yaml", in_force.declared, fresh.declared)


def _settings_problems() -> dict[str, list[str]]:
    """Per settings file, the ``file:line: message`` lines of what keeps it from landing."""
    found: dict[str, list[str]] = {}
    for p in [*settings_review.refused_settings(), *_queues_problems(config_dir())]:
        name = Path(p.path).name
        found.setdefault(name, []).append(f"{name}:{p.line}: {p.message}")
    return found


def submit_changes(session: Session, username: str, *, refuse_settings: bool = False) -> list[VersionInfo]:
    """Land the changed journey files, template folders and settings files signed by ``username``;
    the versions pending review.

    A template folder that does not compile would be passed over by the landing with only a line in
    the log, so the author would see their change missing without a reason: the submission is refused
    whole instead (``TemplatesDoNotCompile``, nothing recorded) and says which file and line. With
    ``refuse_settings`` (the page's and ``journeys review submit``) so is a settings file the landing
    refuses (``engine.language.settings_checks``)."""
    _user(session, username, "review")
    broken = _compile_problems()
    refused = _settings_problems() if refuse_settings else {}
    if broken or refused:
        raise TemplatesDoNotCompile(broken, refused)
    land_changes(session, actor=username)
    template_review.land_templates(session, actor=username)
    settings_review.land_settings(session, actor=username)
    return pending_versions(session)


def pending_versions(session: Session) -> list[VersionInfo]:
    return [v for v in versions(session) if v.state == PENDING]


def approve(session: Session, username: str, version_id: int, comment: str, *,
            now: datetime | None = None) -> JourneyVersion:
    _user(session, username, "approve")
    return decide(session, version_id, username, True, comment, now=now)


def reject(session: Session, username: str, version_id: int, comment: str, *,
           now: datetime | None = None) -> JourneyVersion:
    _user(session, username, "approve")
    return decide(session, version_id, username, False, comment, now=now)


def roll_back(session: Session, username: str, version_id: int, comment: str, *,
              now: datetime | None = None) -> JourneyVersion:
    _user(session, username, "approve")
    return rollback(session, version_id, username, comment, now=now)


@dataclass(frozen=True)
class ReviewPage:
    change: Change
    history: list[VersionInfo]
    previews: list[Preview]
    name: str


def review_page(session: Session, version_id: int) -> ReviewPage:
    """A version, its diff against the version in force, its rendered messages and its journey's history.

    The messages are rendered with the settings in force, landed in a session of their own (as dispatch
    does): on SQLite ``session`` must hold no write of its own yet, or that landing waits on it."""
    found = change(session, version_id)
    if found.version.kind == TEMPLATE:
        name = template_review.name_of(found.version.journey_id)
        engine = session.get_bind()
        assert isinstance(engine, Engine)  # session_scope's sessions are bound to an engine
        return ReviewPage(found, versions(session, found.version.journey_id),
                          template_previews(name, found.version.source, footer_in_force(engine)), name)
    loaded = stored_journey(found.version)
    shown = previews(loaded.journey) if loaded is not None else []
    name = loaded.journey.name if loaded is not None else found.version.journey_id
    return ReviewPage(found, versions(session, found.version.journey_id), shown, name)


def template_previews(name: str, source: str, footer: str) -> list[Preview]:
    """A stored template version rendered for a sample customer: each channel it has, each locale, with the
    marketing ``footer`` dispatch adds (``ops_preview.footer_in_force``), so the preview is what is sent."""
    out: list[Preview] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template_review.write_folder(source, root / name)
        files = {p.name for p in (root / name).iterdir()}
        # Not the cached ``rendering.renderer``: this folder is gone after the request.
        renderer = Renderer(root, configured_footer=footer)
        for channel in ("sms", "wechat", "email", "push"):
            for locale in LOCALES:
                if FILE_FOR[channel].format(locale=locale) not in files:
                    continue
                try:
                    message = renderer.render(name, channel, sample_context(locale), locale)
                except RenderError as exc:
                    out.append(Preview("—", name, channel, locale, error=str(exc)))
                    continue
                out.append(Preview("—", name, channel, message.locale, subject=message.subject, text=message.text,
                                   fields=tuple(message.wechat_data.items()), segments=message.segments))
    return out
