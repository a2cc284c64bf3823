"""A settings file lands only on the checks ``journeys validate`` makes of it (engine.language.settings_checks),
whichever path lands it: a ``config/tiers.yaml`` whose tier names a queue ``config/queues.yaml`` does not
declare is refused whole, at its file:line, and the settings in force stay.

Before, only validate compared ``notify_queue`` with the declared queues: the service's landing, ``journeys
review submit`` and the reading of the file while no version was stored took ``opz``, and once approved the
tier review's warnings went to a queue no agent works."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language import queue_config
from engine.language.journey_registry import ConfigError
from engine.language.settings_model import TierConfig
from engine.language.settings_review import in_force_settings, refused_settings, subject, tier_settings
from store.db import make_engine, session_scope
from store.models import JourneyVersion
from tests.review_support import SUBMITTER, config_copy, installed

TIERS = subject("tiers.yaml")


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    return config_copy(tmp_path, monkeypatch)


def _unknown_queue(config: Path, also: tuple[str, str] | None = None) -> int:
    """The gold tier's notify_queue made 'opz' (with ``also`` changed too); the line it is on."""
    path = config / "tiers.yaml"
    text = path.read_text(encoding="utf-8")
    gold = "retention-boost-gold]\n    notify_queue: "
    text = text.replace(gold + "ops", gold + "opz", 1)
    if also is not None:
        assert also[0] in text
        text = text.replace(*also, 1)
    path.write_text(text, encoding="utf-8")
    return next(n for n, line in enumerate(text.splitlines(), start=1) if "notify_queue: opz" in line)


def _tier_versions(url: str) -> list[str]:
    with session_scope(url) as session:
        return [v.version for v in session.exec(select(JourneyVersion).where(JourneyVersion.journey_id == TIERS))]


def test_the_service_landing_refuses_the_file_whole_and_keeps_the_settings_in_force(
    db_url: str, config: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(db_url)
    try:
        before = tier_settings(engine)  # the files as shipped land at install
        assert _tier_versions(db_url) and before.extra_resources["gold"].notify_queue == "ops"
        landed = _tier_versions(db_url)
        line = _unknown_queue(config, ("churn_threshold: 0.15", "churn_threshold: 0.2"))
        with caplog.at_level(logging.ERROR):
            after = in_force_settings(engine)["tiers.yaml"]
        assert after == before  # neither the queue nor the threshold that came with it
        assert _tier_versions(db_url) == landed  # nothing recorded for review either
        shown = f"{config / 'tiers.yaml'}:{line}:19: unknown queue 'opz' (did you mean 'ops'?)"
        assert shown in caplog.text, caplog.text
        [refused] = refused_settings()
        assert str(refused).startswith(shown)
        # Mended, the next run lands it (for review, as every settings change).
        (config / "tiers.yaml").write_text((config / "tiers.yaml").read_text().replace("opz", "ops"))
        in_force_settings(engine)
        assert len(_tier_versions(db_url)) == len(landed) + 1
    finally:
        engine.dispose()


def test_the_file_read_while_nothing_is_stored_is_refused_too(db_url: str, config: Path) -> None:
    line = _unknown_queue(config)
    engine = make_engine(db_url)
    try:
        with pytest.raises(ConfigError, match=rf"tiers.yaml:{line}:19: unknown queue 'opz'"):
            tier_settings(engine)
        assert _tier_versions(db_url) == []
    finally:
        engine.dispose()


def test_review_submit_names_the_refused_file_at_its_line(db_url: str, config: Path) -> None:
    installed(db_url)
    landed = _tier_versions(db_url)
    line = _unknown_queue(config)
    result = CliRunner().invoke(build_app(), ["review", "submit", "--as", SUBMITTER])
    assert result.exit_code == 1, result.output
    # Refused whole, as the console's page refuses it: nothing of the submission is recorded.
    assert f"tiers.yaml:{line}: unknown queue 'opz'" in result.stderr and "nothing submitted" in result.stderr
    assert _tier_versions(db_url) == landed


def test_without_a_queues_file_every_queue_name_is_taken(db_url: str, config: Path) -> None:
    """As validate: without config/queues.yaml every queue exists with the defaults."""
    (config / "queues.yaml").unlink()
    _unknown_queue(config)
    engine = make_engine(db_url)
    try:
        settings = tier_settings(engine)
        assert isinstance(settings, TierConfig) and settings.extra_resources["gold"].notify_queue == "opz"
    finally:
        engine.dispose()


def test_a_queues_file_dropping_a_queue_the_tiers_name_keeps_the_desk_in_force(
    config: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The same check from the other side: config/queues.yaml is re-read when it changes, and an edit that
    drops the queue the tier review warns in is refused as validate refuses it, at the tier file's line."""
    path = config / "queues.yaml"
    before = queue_config.current(path)
    assert "ops" in before.declared
    text = path.read_text(encoding="utf-8")
    ops = "  ops:\n    teams: [ops]\n    outcomes: [resolved]\n    clock: business\n"
    assert ops in text
    path.write_text(text.replace(ops, ""), encoding="utf-8")
    assert queue_config.load(path)[0] is not None  # a valid file on its own
    with caplog.at_level(logging.ERROR):
        assert queue_config.current(path) is before
    tiers = (config / "tiers.yaml").read_text(encoding="utf-8").splitlines()
    first = next(n for n, line in enumerate(tiers, start=1) if "notify_queue: ops" in line)
    assert f"tiers.yaml:{first}:19: unknown queue 'ops'" in caplog.text, caplog.text
