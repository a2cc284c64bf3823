"""A broken journey file is rejected whole and its last good version stays in force; a change to a
marketing journey waits for approval (engine.language.journey_review)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlmodel import Session, select

from engine.language.journey_registry import load_in_force
from engine.language.journey_review import PENDING, decide
from store.db import get_engine
from store.models import JourneyVersion

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = """\
id: silver-weekly-push
name: Silver weekly push
category: marketing
priority: 40
audience:
  tiers: [silver]
entry:
  schedule:
    cron: "0 10 * * MON"
steps:
  - id: push
    send: {channels: [wechat, sms], template: silver_weekly_push}
"""


def test_last_good_version_stays_in_force(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    path = folder / "silver-weekly-push.yaml"
    path.write_text(SHIPPED, encoding="utf-8")

    with Session(get_engine(db_url)) as session:
        first = load_in_force(session, folder)
        session.commit()
        assert list(first.journeys) == ["silver-weekly-push"]
        assert first.problems == [] and first.fallbacks == {}
        good_version = first.journeys["silver-weekly-push"].version

        # A new valid version of a marketing journey lands pending; the first stays in force until approved.
        path.write_text(SHIPPED.replace("priority: 40", "priority: 45"), encoding="utf-8")
        second = load_in_force(session, folder)
        session.commit()
        assert second.journeys["silver-weekly-push"].version == good_version
        pending = session.exec(select(JourneyVersion).where(JourneyVersion.review_state == PENDING)).one()
        assert second.held == {"silver-weekly-push": pending.version}
        assert pending.id is not None
        decide(session, pending.id, "compliance-carol", True, "wording checked")
        session.commit()
        newer = load_in_force(session, folder).journeys["silver-weekly-push"]
        assert newer.version == pending.version != good_version and newer.journey.priority == 45

        # A broken edit: rejected with file:line, and version 2 stays in force.
        path.write_text(SHIPPED.replace("priority: 40", "priority: 45").replace("tiers: [silver]", "tiers: [silvr]"))
        third = load_in_force(session, folder)
        session.commit()
        assert third.journeys["silver-weekly-push"].version == newer.version
        assert third.journeys["silver-weekly-push"].journey.priority == 45
        assert third.fallbacks == {"silver-weekly-push": newer.version}
        assert any("unknown tier 'silvr'" in str(p) and ":6:" in str(p) for p in third.problems), third.problems

        versions = session.exec(select(JourneyVersion.version)).all()
        assert sorted(versions) == sorted([good_version, newer.version])  # the broken one never published


def test_broken_file_without_earlier_version_is_not_in_force(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "x.yaml").write_text(SHIPPED.replace("category: marketing", "category: promo"), encoding="utf-8")
    with Session(get_engine(db_url)) as session:
        result = load_in_force(session, folder)
    assert result.journeys == {}
    assert result.problems and "category" in str(result.problems[0])


def test_a_stored_version_today_s_checks_refuse_is_not_kept_in_force(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A version stored by an earlier release (its cron fired every half hour) whose file is now broken:
    the stored version fails this release's checks, so it is not run past them, and the log says so."""
    folder = tmp_path / "journeys"
    folder.mkdir()
    path = folder / "silver-weekly-push.yaml"
    path.write_text(SHIPPED, encoding="utf-8")
    with Session(get_engine(db_url)) as session:
        good = load_in_force(session, folder).journeys["silver-weekly-push"].version
        session.commit()
        row = session.exec(select(JourneyVersion).where(JourneyVersion.version == good)).one()
        row.source = row.source.replace('"0 10 * * MON"', '"*/30 10 * * MON"')  # as an older release stored it
        session.add(row)
        session.commit()

        path.write_text(SHIPPED.replace("tiers: [silver]", "tiers: [silvr]"), encoding="utf-8")
        with caplog.at_level(logging.ERROR, logger="engine.language.journey_registry"):
            result = load_in_force(session, folder)
    assert result.journeys == {} and result.fallbacks == {}
    assert any("unknown tier 'silvr'" in str(p) for p in result.problems)
    assert any("fails this release's checks" in r.getMessage() and good[:8] in r.getMessage()
               for r in caplog.records), caplog.text
