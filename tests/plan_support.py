"""Helpers for the planner's tests: small journey files and templates in a temporary folder,
and customers written straight to the store."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from store.db import get_engine
from store.models import AgentTask, Customer, Policy, Touch

KINDS = ("sms", "wechat", "email", "task")
ROOT = Path(__file__).resolve().parent.parent


def vip_branch(step: str, vip: str, otherwise: str) -> str:
    """A branch step (YAML at step level) sending customers flagged ``attributes.vip`` to ``vip``."""
    return f"""\
  - id: {step}
    branch:
      cases:
        - when: {{field: customer.attributes.vip, op: eq, value: true}}
          goto: {vip}
      otherwise: {otherwise}
"""


def send_journey(journey_id: str, name: str, entry: str, *, step: str, channels: str, category: str = "service",
                 priority: int | None = None, urgent: bool = False, audience: str | None = None) -> str:
    """A journey whose one step sends ``msg``: all a test of when, and to whom, a touch is planned
    needs. ``entry``, ``channels`` and ``audience`` are YAML flow."""
    head = [f"id: {journey_id}", f"name: {name}", f"category: {category}"]
    if priority is not None:
        head.append(f"priority: {priority}")
    if urgent:
        head.append("urgent: true")
    if audience is not None:
        head.append(f"audience: {audience}")
    return "\n".join(head) + f"""
entry: {entry}
steps:
  - id: {step}
    send: {{channels: {channels}, template: msg}}
"""


# A weekly service journey that branches on an attribute: VIPs get a push (WeChat, else SMS),
# the others an agent callback task. Enough to exercise entry, conditions, sends and tasks.
WEEKLY_PUSH_OR_CALL = """\
id: weekly
name: Weekly
category: service
entry:
  schedule: {cron: "0 10 * * MON"}
steps:
""" + vip_branch("vip", "push", "call") + """\
  - id: push
    send: {channels: [wechat, sms], template: msg}
  - id: done
    exit: {reason: sent}
  - id: call
    task: {queue: service_recovery, script: call, due_within: 1d}
"""


def write_templates(root: Path, names: Iterable[str]) -> None:
    """Minimal but valid templates (every channel and the call script, both locales)."""
    for name in names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.yaml").write_text(
            f"description: {name}\ncategory: service\nwechat:\n  template_id: TPL_{name.upper()}\n", encoding="utf-8"
        )
        for locale in ("zh-CN", "en"):
            (folder / f"sms.{locale}.j2").write_text("Hello {{ customer.name }}", encoding="utf-8")
            (folder / f"wechat.{locale}.yaml").write_text("first: 'Hello'\n", encoding="utf-8")
            (folder / f"email.{locale}.j2").write_text(
                "{% block subject %}Hi{% endblock %}{% block text %}Hi{% endblock %}"
                "{% block html %}<p>Hi</p>{% endblock %}",
                encoding="utf-8",
            )
            (folder / f"task.{locale}.j2").write_text("Call the customer", encoding="utf-8")


class Book:
    """A temporary journeys/templates folder plus the database under test."""

    def __init__(self, root: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.url = url
        self.journeys = root / "journeys"
        self.templates = root / "templates"
        self.journeys.mkdir(parents=True, exist_ok=True)
        self.templates.mkdir(parents=True, exist_ok=True)
        write_templates(self.templates, ["msg", "call"])
        monkeypatch.setenv("JOURNEYS_DIR", str(self.journeys))
        monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(self.templates))
        self.monkeypatch = monkeypatch
        self._n = 0

    def journey(self, name: str, text: str) -> None:
        (self.journeys / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")

    def shipped(self, *names: str) -> None:
        """Shipped journeys (``journeys/<name>.yaml``) as they are, with the shipped templates."""
        for name in names:
            shutil.copy(ROOT / "journeys" / f"{name}.yaml", self.journeys / f"{name}.yaml")
        self.monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(ROOT / "templates"))

    def customer(self, **fields: Any) -> int:
        self._n += 1
        now = datetime(2020, 1, 1, tzinfo=UTC)
        birthday = fields.get("birthday")
        values: dict[str, Any] = {
            "external_id": f"C{self._n:05d}", "name": f"Customer {self._n}", "tier": "silver",
            "timezone": "Asia/Shanghai", "phone": f"+86138{self._n:08d}", "wechat_openid": f"o{self._n}",
            "email": f"c{self._n}@example.com", "consent_sms": True, "consent_wechat": True, "consent_email": True,
            "created_at": now, "updated_at": now,
        }
        values.update(fields)
        if isinstance(birthday, date):
            values["birth_md"] = birthday.month * 100 + birthday.day
        with Session(get_engine(self.url)) as session:
            row = Customer(**values)
            session.add(row)
            session.commit()
            assert row.id is not None
            return row.id

    def policy_holder(self, product_line: str, annual_premium: float, start: date, expiry: date) -> int:
        """A new customer holding one active policy, ``P1``; returns the customer's id."""
        cid = self.customer()
        self.add(Policy(external_id="P1", customer_id=cid, product_line=product_line, annual_premium=annual_premium,
                        start_date=start, expiry_date=expiry, status="active"))
        return cid

    def add(self, *rows: Any) -> None:
        with Session(get_engine(self.url)) as session:
            session.add_all(rows)
            session.commit()

    def touches(self) -> list[Touch]:
        with Session(get_engine(self.url)) as session:
            return list(session.exec(select(Touch).order_by(Touch.due_at, Touch.key)).all())  # type: ignore[arg-type]

    def tasks(self) -> list[AgentTask]:
        with Session(get_engine(self.url)) as session:
            return list(session.exec(select(AgentTask).order_by(AgentTask.due_at)).all())  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc,arg-type]
