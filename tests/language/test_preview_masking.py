"""A preview renders with masked data throughout (``masked_context``), whatever filter a template uses.

The reviewer's ``{{ customer|tojson }}`` showed 刘雷 as ``"\\u5218\\u96f7"`` while the header showed 刘*:
the preview masked the rendered text afterwards, which no encoding a template chooses has to match.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.rendering import Renderer, build_context
from store.db import session_scope
from store.models import Customer, Event
from tests.language.test_rendering import _customer_with_policies, write_template

# Ways a template can show a value other than as itself.
ENCODINGS = {
    "tojson": ("{{ customer|tojson }} {{ event.data|tojson }}", lambda text: json.dumps(text, ensure_ascii=False)),
    "join": ("{{ customer.name|list|join('-') }}", lambda text: text.replace("-", "")),
    "reverse": ("{{ customer.name|reverse }}", lambda text: text[::-1]),
    "urlencode": ("{{ customer.name|urlencode }} {{ event.data.text|urlencode }}", unquote),
    "ords": ("{% for c in customer.name %}{{ '%x'|format(c|length) }}{{ c }}{% endfor %}", lambda text: text),
}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def test_a_masked_context_carries_no_name_or_contact_detail_so_no_filter_shows_one(db_url: str,
                                                                                   tmp_path: Path) -> None:
    _customer_with_policies(db_url)
    now = datetime(2026, 11, 20, 2, tzinfo=UTC)
    with session_scope(db_url) as s:
        customer = s.exec(select(Customer).where(Customer.external_id == "C-1")).one()
        event = Event(external_id="e", type="complaint.filed", customer_id=customer.id, occurred_at=now,
                      received_at=now,
                      data={"text": "张伟投诉，电话13812345678", "notes": ["张伟 zhang.wei@example.com"]})
        context = build_context(s, customer, event=event, now=now, masked=True)
        plain = build_context(s, customer, event=event, now=now)
    variables = context.variables("zh-CN")
    assert variables["customer"]["name"] == "张*"
    leaked = [text for text in _strings(variables) if "伟" in text or "13812345678" in text or "zhang.wei" in text]
    assert leaked == []
    assert plain.customer.name == "张伟"  # unmasked unless asked: dispatch and the agent's script need the name
    root = tmp_path / "templates"
    for name, (body, _) in ENCODINGS.items():
        write_template(root, name, {"sms.zh-CN.j2": body}, max_segments=10)
    renderer = Renderer(root, footer="")
    for name, (_, decode) in ENCODINGS.items():
        shown = renderer.render(name, "sms", context, "zh-CN").text
        decoded = json.loads(f"[{shown.replace('} {', '}, {')}]") if name == "tojson" else decode(shown)
        assert "伟" not in repr(decoded) and "伟" not in shown and "\\u4f1f" not in shown, (name, shown)


def test_journeys_preview_shows_no_encoded_name(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _customer_with_policies(db_url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", db_url)
    write_template(tmp_path, "dump", {"sms.zh-CN.j2": "{{ customer|tojson }}"}, max_segments=10)
    result = CliRunner().invoke(build_app(), ["preview", "dump", "--customer", "C-1", "--templates", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "\\u5f20\\u4f1f" not in result.output and "\\u4f1f" not in result.output
