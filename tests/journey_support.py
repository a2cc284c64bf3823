"""The head every test journey carries (id, name, category, entry), written in one place.

A test that builds its journey from step fragments (``plan_support.vip_branch`` and the like)
then spells out only the steps it is about; journeys whose head matters to the test stay
written out in full.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from store.models import Customer
from tests.review_support import ROOT, config_copy


def journey(journey_id: str, name: str, entry: str, steps: str, *, category: str = "service",
            reentry: bool | None = None, goal: str | None = None) -> str:
    """A journey's YAML: its head, then ``steps`` (YAML at step level, each item indented two spaces).
    ``entry`` and ``goal`` are YAML flow; ``reentry`` left out keeps the language's default."""
    reentry_line = "" if reentry is None else f"reentry: {{allowed: {str(reentry).lower()}}}\n"
    goal_line = "" if goal is None else f"goal: {goal}\n"
    return (f"id: {journey_id}\nname: {name}\ncategory: {category}\nentry: {entry}\n{goal_line}{reentry_line}"
            f"steps:\n{steps}")


def steps(**bodies: str) -> str:
    """Steps (YAML at step level) in the order given, from step id to the step's one line of YAML,
    for journeys that are a run of sends and waits: ``steps(first=send(), pause="wait: 5d")``."""
    return "".join(f"  - id: {step}\n    {body}\n" for step, body in bodies.items())


def send(channels: str = "[sms]") -> str:
    """A send step's line: the message ``msg`` on ``channels`` (a YAML list)."""
    return f"send: {{channels: {channels}, template: msg}}"


def journeys_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty journeys folder of the test's own, with the shipped templates and a copy of the shipped
    configuration, all three set for the code under test (the service's ticks read them from the environment)."""
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    monkeypatch.setenv("JOURNEYS_DIR", str(journeys))
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(ROOT / "templates"))
    config_copy(tmp_path, monkeypatch)
    return journeys


def sms_and_wechat_customer(engine: Engine) -> None:
    """Customer 1 (C1), silver in Shanghai, reachable and consenting on SMS and WeChat: the one customer of the
    tests that follow a journey planned ahead through dispatch."""
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        session.add(Customer(external_id="C1", name="Customer 1", tier="silver", timezone="Asia/Shanghai",
                             phone="+8613800000001", wechat_openid="o1", consent_sms=True, consent_wechat=True,
                             birthday=date(1980, 6, 1), birth_md=601, created_at=made, updated_at=made))
        session.commit()
