"""A template folder whose files do not compile is not recorded as a version: the last good version stays
in force (even for a category that needs no review, which would put it in force at once), a warning names
the folder and the file:line, and the mended folder lands as usual."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlmodel import col, select

from engine.language import template_review
from engine.language.template_review import TEMPLATE, folder_source, in_force_root, land_templates, subject
from store.db import session_scope
from store.models import JourneyVersion
from tests.plan_support import write_templates

SERVICE_JOURNEY = """\
id: care
category: service
steps:
  - send: {template: msg}
"""

BROKEN = [
    pytest.param("Hello {{ customer.name | nosuchfilter }}", "unknown filter 'nosuchfilter'", id="unknown-filter"),
    pytest.param("Hello {{ customer.name ", "template syntax", id="syntax-error"),
    pytest.param("{% if customer.name is nosuchtest %}x{% endif %}", "unknown test 'nosuchtest'", id="unknown-test"),
]


@pytest.fixture
def templates(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``msg`` template only a service journey sends (no review needed), landed once at install."""
    journeys, root = tmp_path / "journeys", tmp_path / "templates"
    journeys.mkdir()
    (journeys / "care.yaml").write_text(SERVICE_JOURNEY, encoding="utf-8")
    write_templates(root, ["msg"])
    monkeypatch.setenv("JOURNEYS_DIR", str(journeys))
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(root))
    land(db_url, root)
    return root


def land(url: str, root: Path) -> dict[str, str]:
    """Land the folders: the version in force of each template."""
    with session_scope(url) as session:
        return {key: row.version for key, row in land_templates(session, root).items()}


def stored(url: str) -> list[tuple[str, str]]:
    """(version, review state) of every recorded version of ``msg``, oldest first."""
    with session_scope(url) as session:
        rows = session.exec(select(JourneyVersion).where(JourneyVersion.kind == TEMPLATE,
                                                         JourneyVersion.journey_id == subject("msg"))
                            .order_by(col(JourneyVersion.id))).all()
        return [(r.version, r.review_state) for r in rows]


def sms(root: Path, text: str) -> None:
    (root / "msg" / "sms.en.j2").write_text(text, encoding="utf-8")


def sent_text(url: str, root: Path) -> str:
    """The English SMS of ``msg`` as the renderers would read it: from the in-force folder."""
    with session_scope(url) as session:
        folder = in_force_root(session, root)
    return (folder / "msg" / "sms.en.j2").read_text(encoding="utf-8")


@pytest.mark.parametrize(("broken", "reason"), BROKEN)
def test_a_broken_template_is_not_recorded_and_the_good_version_stays_in_force(
        templates: Path, db_url: str, broken: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    sms(templates, "Good morning {{ customer.name }}")
    good = land(db_url, templates)[subject("msg")]
    assert good == template_review._version(folder_source(templates / "msg"))  # no review needed
    assert sent_text(db_url, templates) == "Good morning {{ customer.name }}"
    recorded = stored(db_url)

    sms(templates, "Good evening\n" + broken)
    with caplog.at_level(logging.WARNING, logger=template_review.__name__):
        in_force = land(db_url, templates)
    assert stored(db_url) == recorded
    assert in_force[subject("msg")] == good
    assert sent_text(db_url, templates) == "Good morning {{ customer.name }}"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "msg" in warning and f"sms.en.j2:2:1: {reason}" in warning, warning
    assert f"version {good[:8]} stays in force" in warning

    sms(templates, "Good evening {{ customer.name }}")
    mended = land(db_url, templates)[subject("msg")]
    assert stored(db_url) == [*recorded, (mended, "approved")]
    assert sent_text(db_url, templates) == "Good evening {{ customer.name }}"


def test_a_broken_meta_yaml_is_not_recorded(templates: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    recorded = stored(db_url)
    (templates / "msg" / "meta.yaml").write_text("description: [unclosed\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=template_review.__name__):
        land(db_url, templates)
    assert stored(db_url) == recorded
    assert any("meta.yaml:" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_a_new_broken_template_is_not_in_force(templates: Path, db_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    write_templates(templates, ["fresh"])
    (templates / "fresh" / "sms.zh-CN.j2").write_text("{% if %}", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger=template_review.__name__):
        in_force = land(db_url, templates)
    assert subject("fresh") not in in_force and subject("msg") in in_force
    assert not (in_force_root_of(db_url, templates) / "fresh").exists()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "fresh" in warning and "sms.zh-CN.j2:1:1" in warning and "not in force" in warning


def in_force_root_of(url: str, root: Path) -> Path:
    with session_scope(url) as session:
        return in_force_root(session, root)


def test_unchanged_folders_are_checked_once(templates: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """The dispatcher lands every 30 s: an unchanged folder, good or broken, is not compiled again, and a
    broken one is not warned about again; a change is checked at once."""
    sms(templates, "Hi {{ customer.name | nosuchfilter }}")
    land(db_url, templates)
    checked: list[list[str]] = []
    real = template_review.template_problems_by_name

    def counted(root: Path, names: list[str]) -> dict[str, list[object]]:
        checked.append(list(names))
        return real(root, names)  # type: ignore[return-value]

    monkeypatch.setattr(template_review, "template_problems_by_name", counted)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=template_review.__name__):
        for _ in range(3):
            land(db_url, templates)
    assert checked == []
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    sms(templates, "Hi {{ customer.name }}")
    land(db_url, templates)
    assert checked == [["msg"]]
