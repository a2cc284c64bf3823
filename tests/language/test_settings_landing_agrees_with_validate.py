"""``journeys validate`` and every landing of a settings file judge it by one function
(``engine.language.settings_checks.settings_file``): for any broken ``config/tiers.yaml`` or
``config/delivery.yaml`` validate refuses, the landing refuses it too, with the same problems, and the
reverse; a refused landing leaves the settings in force and the stored versions as they were.

Before, the landing read the file on its own: a file that could not be read (not UTF-8, a folder in its
place) or was missing was refused by validate and passed over in silence by ``journeys review submit``
and the review page, which then reported a submission that had not landed the file.

Drawn too, the names a settings file takes from the journey files, which the landing checked against
nothing: a tier's extra resources naming a journey no file holds, and a task type of
``config/queues.yaml`` naming an unknown journey or step. Their reference is the journeys of the files,
which land with them; the queues file lands when ``queue_config.current`` reads it again (the desk in
force stays when it is refused) and with ``journeys review submit`` and the review page."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from console import review
from engine.language import queue_config
from engine.language.problems import display_path
from engine.language.settings_review import in_force_settings, refused_settings
from engine.language.validation import validate
from store.db import make_engine, session_scope
from store.models import JourneyVersion
from tests.review_support import SUBMITTER, config_copy, installed

NAMES = ("tiers.yaml", "delivery.yaml", "queues.yaml")
# Text a reader may type where a name, number or value goes: names that are and are not journeys or
# queues, numbers in and out of range, YAML that does not parse.
WORDS = st.one_of(
    st.sampled_from(["retention-boost-gold", "retention-boost-gld", "retention-boost-gold/care_pack",
                     "retention-boost-gold/care-pack", "ops", "opz", "0.5", "2", "-1", "yes", "[",
                     "{a: 1", "''", "null", "Asia/Shanghai", "Mars/Base", "25:00", "7d", "7 days"]),
    st.text(st.sampled_from("abz-_:0.9 "), min_size=1, max_size=12),
)


def _replace_value(text: str, word: str, key: str, which: int) -> str:
    """The ``which``-th ``key:`` line's value (or flow list of journeys, or task type) as ``word``."""
    lines = text.split("\n")
    found = [i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
    if not found:
        return text
    i = found[which % len(found)]
    head = lines[i][: lines[i].index(":") + 1]
    if key == "task_types":
        lines[i] = f"{head} {{{word}: {{requires: [licence:health]}}}}"
    else:
        lines[i] = f"{head} [{word}]" if key == "journeys" else f"{head} {word}"
    return "\n".join(lines)


def _value_edit(key: str, word: str, which: int) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        path.write_text(_replace_value(path.read_text(encoding="utf-8"), word, key, which), encoding="utf-8")
    return edit


@st.composite
def spoilt(draw: st.DrawFn) -> tuple[str, str, Callable[[Path], None]]:
    """A settings file and an edit of it, most of which validate refuses."""
    name = draw(st.sampled_from(NAMES))
    # The queues file's own checks are test_config_problem_lines'; drawn here is what it names of the journeys.
    kind = draw(st.sampled_from(["value"] if name == "queues.yaml" else
                                ["value", "value", "value", "bytes", "top", "gone", "folder"]))
    if kind == "value":
        keys = {"tiers.yaml": ["notify_queue", "churn_threshold", "window", "journeys", "journeys"],
                "queues.yaml": ["task_types"],
                "delivery.yaml": ["default_timezone", "start", "marketing_cap", "marketing_cap_window",
                                  "active_activity"]}[name]
        edit = _value_edit(draw(st.sampled_from(keys)), draw(WORDS), draw(st.integers(0, 4)))
    elif kind == "bytes":
        at = draw(st.integers(0, 2000))

        def edit(path: Path) -> None:  # a stray byte that is not UTF-8 (a file saved as GBK)
            data = path.read_bytes()
            path.write_bytes(data[: at % len(data)] + b"\xb0" + data[at % len(data):])
    elif kind == "top":
        def edit(path: Path) -> None:
            path.write_text("- a list\n- not a mapping\n", encoding="utf-8")
    elif kind == "gone":
        def edit(path: Path) -> None:
            path.unlink()
    else:
        def edit(path: Path) -> None:
            path.unlink()
            path.mkdir()
    return name, kind, edit


@pytest.fixture()
def config(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    folder = config_copy(tmp_path, monkeypatch)
    installed(db_url)  # the shipped files in force: a refused edit must leave them so
    yield folder


def _versions(url: str) -> list[tuple[str, str]]:
    with session_scope(url) as session:
        return sorted((v.journey_id, v.version) for v in session.exec(select(JourneyVersion)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=spoilt())
# Always tried, whatever is drawn: what the landing did not check before (a journey, a step no file holds).
@example(case=("tiers.yaml", "value", _value_edit("journeys", "retention-boost-gld", 2)))
@example(case=("queues.yaml", "value", _value_edit("task_types", "retention-boost-gld", 0)))
@example(case=("queues.yaml", "value", _value_edit("task_types", "retention-boost-gold/care-pack", 0)))
@example(case=("queues.yaml", "value", _value_edit("task_types", "retention-boost-gold/care_pack", 0)))
def test_validate_and_the_landing_refuse_the_same_files_with_the_same_problems(
    case: tuple[str, str, Callable[[Path], None]], config: Path, db_url: str,
) -> None:
    name, kind, edit = case
    event(f"{name}: {kind}")
    path = config / name
    kept = path.read_bytes()
    engine = make_engine(db_url)
    try:
        desk = queue_config.current(config / "queues.yaml")
        before, stored = in_force_settings(engine), _versions(db_url)
        edit(path)
        found = [p for p in validate().problems if p.path == display_path(path)]
        by_validate = sorted(str(p) for p in found)
        if name != "queues.yaml":  # not a version for review: it lands when the desk reads it (below)
            landing = [p for p in refused_settings() if p.path == display_path(path)]
            assert by_validate == sorted(str(p) for p in landing)
        with session_scope(db_url) as session:
            try:
                review.submit_changes(session, SUBMITTER, refuse_settings=True)
                refused: list[str] = []
            except review.TemplatesDoNotCompile as exc:  # the page's and the CLI's refusal, file by file
                refused = sorted(exc.settings.get(name, []))
        assert refused == sorted(f"{name}:{p.line}: {p.message}" for p in found)
        if by_validate:  # refused: the settings and desk in force and the stored versions are as they were
            assert in_force_settings(engine) == before
            assert _versions(db_url) == stored
            assert queue_config.current(config / "queues.yaml") is desk
    finally:
        engine.dispose()
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(kept)
