"""Settings and templates changed the way ops change them: the file edited, the change submitted by one
user and approved by another (``console.review``), so it is in force for every reader, as in production.

A test that only sets up a scenario before anything ran needs none of this (the files as found at
install count as approved); one that changes a setting once the store has seen the earlier one does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from console import review
from console.auth import create_user
from engine.language.journey_review import PENDING
from store.db import session_scope
from store.models import AppUser

ROOT = Path(__file__).resolve().parents[1]
SUBMITTER, APPROVER = "review-author", "review-approver"


def config_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped configuration folder, copied for the test to edit and set as JOURNEYS_CONFIG_DIR."""
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    return config


def own_tiers(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For a book of a few journeys of its own (``tests.plan_support.Book``, its ``root``): the shipped
    configuration whose tier settings switch on no journey on dynamic adjustment. The shipped file names
    the shipped retention boost journeys, which such a book does not hold: validate refuses it there, and
    so does every landing (``journeys review submit``, the review page, the service's)."""
    config = config_copy(root, monkeypatch)
    set_setting(config / "tiers.yaml", "extra_resources", "{}")
    return config


def set_setting(path: Path, key: str, value: str) -> None:
    """Replace the top-level ``key: …`` line (or block) of a settings file with ``key: value``."""
    text = path.read_text(encoding="utf-8")
    block = re.compile(rf"(?m)^{re.escape(key)}:.*\n(?:[ \t]+.*\n)*")
    assert block.search(text), f"{key} not in {path.name}"
    path.write_text(block.sub(lambda _: f"{key}: {value}\n", text, count=1), encoding="utf-8")


def _reviewers(url: str) -> None:
    with session_scope(url) as session:
        known = set(session.exec(select(AppUser.username)).all())
        for name, role in ((SUBMITTER, "compliance"), (APPROVER, "admin")):
            if name not in known:
                create_user(session, name, "long-enough-1", role)


def installed(url: str) -> None:
    """Land every file as found, as the first run of any reader does at install (the dispatcher's, if
    nothing else): there is then a version in force for a later edit to wait behind."""
    _reviewers(url)
    with session_scope(url) as session:
        review.submit_changes(session, SUBMITTER)


def submit(url: str, subject: str) -> int:
    """Submit the changes on disk; the id of ``subject``'s pending version (``setting:delivery.yaml``…)."""
    _reviewers(url)
    with session_scope(url) as session:
        [pending] = [v for v in review.submit_changes(session, SUBMITTER) if v.journey_id == subject]
        assert pending.state == PENDING
        return pending.id


def approve(url: str, version_id: int) -> None:
    with session_scope(url) as session:
        review.approve(session, APPROVER, version_id, "agreed for the test")


def submit_and_approve(url: str, subject: str) -> int:
    """What puts a changed settings file or template in force: submitted, then approved by someone else."""
    version_id = submit(url, subject)
    approve(url, version_id)
    return version_id


def roll_back(url: str, version_id: int) -> None:
    with session_scope(url) as session:
        review.roll_back(session, APPROVER, version_id, "back to the earlier version")
