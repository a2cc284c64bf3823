"""The journey rules dispatch reads at every batch: validated once for concurrent lanes, read again on a change,
and those of the journeys in force (an edit awaiting review is not)."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from engine.language import journey_registry
from engine.language.validation import Report
from engine.sending.dispatch import make_dispatcher
from engine.sending.journey_rules import JourneyRules
from store.db import get_engine
from tests.plan_support import Book
from tests.review_support import approve, installed, submit

ROOT = Path(__file__).resolve().parent.parent.parent


def test_lanes_asking_at_once_validate_the_journeys_once_and_a_changed_file_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", folder)
    validations: list[str] = []
    validate = journey_registry.validate_cached

    def counted(paths: list[Path] | None = None) -> Report:
        validations.append(threading.current_thread().name)
        # Slow enough that lanes starting together all ask before the first has finished.
        time.sleep(0.2)
        return validate(paths)

    monkeypatch.setattr(journey_registry, "validate_cached", counted)
    start = threading.Barrier(3)
    found: list[JourneyRules] = []

    def lane() -> None:
        start.wait()
        found.append(JourneyRules.from_files(folder))

    lanes = [threading.Thread(target=lane) for _ in range(3)]
    for t in lanes:
        t.start()
    for t in lanes:
        t.join()
    assert len(validations) == 1
    assert len(found) == 3 and found[0] == found[1] == found[2]
    assert found[0].caps["claim-crm-case"] == (1, timedelta(days=30))
    assert JourneyRules.from_files(folder) == found[0] and len(validations) == 1  # nothing changed: not again

    path = folder / "claim-crm-case.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("cap: {count: 1, window: 30d}", "cap: {count: 2, window: 7d}"),
        encoding="utf-8",
    )
    assert JourneyRules.from_files(folder).caps["claim-crm-case"] == (2, timedelta(days=7))
    assert len(validations) == 2


CAPPED = """
id: offer
name: Daily offer
category: marketing
priority: 20
cap: {{count: {count}, window: 7d}}
audience: {{tiers: [silver]}}
entry: {{schedule: {{cron: "0 10 * * *"}}}}
steps:
  - id: push
    send: {{channels: [sms], template: msg}}
"""


def test_the_service_dispatcher_keeps_the_cap_in_force_until_an_edit_is_approved(book: Book) -> None:
    """A marketing journey's cap edited in its file is what dispatch enforces only once approved."""
    book.journey("offer", CAPPED.format(count=1))
    installed(book.url)
    rules = make_dispatcher(get_engine(book.url), {}).journey_rules
    assert rules().caps["offer"] == (1, timedelta(days=7))

    book.journey("offer", CAPPED.format(count=3))
    pending = submit(book.url, "offer")
    assert rules().caps["offer"] == (1, timedelta(days=7))  # pending: the approved cap holds
    approve(book.url, pending)
    assert rules().caps["offer"] == (3, timedelta(days=7))
