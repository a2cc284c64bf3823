"""A template Jinja cannot compile (syntax, an unknown filter or test) is a problem at its file and
line: the journeys sending it are rejected, everything else is validated, planned and handled."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from engine.cli import build_app
from engine.language.validation import validate
from engine.loop.events import emit_event
from store.db import get_engine
from store.models import Event
from tests.plan_support import Book, utc

PROBE = """\
id: zz-t
name: probe
category: service
priority: 50
entry: {event: {type: complaint.filed}}
steps:
  - id: s
    send: {channels: [sms], template: zz_t}
  - id: done
    exit: {reason: x}
"""

OTHER = """\
id: other
name: Other
category: service
entry: {event: {type: complaint.filed}}
steps:
  - id: ack
    send: {channels: [sms], template: msg}
"""

BROKEN = [
    ("unknown filter", "【安心保险】{{ customer.name | nosuchfilter }}", "unknown filter 'nosuchfilter'"),
    ("unknown test", "【安心保险】{% if customer.name is nosuchtest %}x{% endif %}", "unknown test 'nosuchtest'"),
    ("syntax error", "【安心保险】\n{{ customer.name ", "template syntax:"),
]


def _template(root: Path, name: str, zh: str) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.yaml").write_text(
        "description: probe\ncategory: service\nsms: {max_segments: 2}\nvariables: [customer.name]\n", encoding="utf-8")
    (folder / "sms.zh-CN.j2").write_text(zh, encoding="utf-8")
    (folder / "sms.en.j2").write_text("[AnXin] {{ customer.name }}", encoding="utf-8")


def _line(text: str) -> int:
    return text.count("\n") + 1 if "{{ customer.name " in text and not text.rstrip().endswith("}}") else 1


@pytest.mark.parametrize(("zh", "words"), [(zh, words) for _, zh, words in BROKEN], ids=[n for n, _, _ in BROKEN])
def test_a_template_that_does_not_compile_rejects_the_journeys_sending_it(
        book: Book, zh: str, words: str) -> None:
    _template(book.templates, "zz_t", zh)
    book.journey("zz-t", PROBE)
    book.journey("other", OTHER)
    report = validate([book.journeys], book.templates)
    at = [p for p in report.problems if p.path.endswith("zz_t/sms.zh-CN.j2")]
    assert [(p.line, words in p.message) for p in at] == [(_line(zh), True)], [str(p) for p in report.problems]
    assert not any("Error" in p.message for p in at)  # a plain message, no exception class
    assert [j.id for j in report.journeys] == ["other"]
    assert any(f.endswith("zz-t.yaml") for f in report.rejected_files)
    assert any(p.path.endswith("zz-t.yaml") and "'zz_t' does not compile" in p.message for p in report.problems)


def test_an_unused_template_is_checked_and_rejects_no_journey(book: Book) -> None:
    _template(book.templates, "zz_t", "{{ customer.name | nosuchfilter }}")
    book.journey("other", OTHER)
    report = validate([book.journeys], book.templates)
    assert [(p.line, p.message) for p in report.problems if p.path.endswith("zz_t/sms.zh-CN.j2")] == [
        (1, "unknown filter 'nosuchfilter'")]
    assert [j.id for j in report.journeys] == ["other"] and report.rejected_files == []


def test_plan_and_events_go_on_for_the_other_journeys(book: Book, caplog: pytest.LogCaptureFixture) -> None:
    _template(book.templates, "zz_t", "【安心保险】{{ customer.name | nosuchfilter }}")
    book.journey("zz-t", PROBE)
    book.journey("other", OTHER)
    (book.journeys / "weekly.yaml").write_text(textwrap.dedent("""\
        id: weekly
        name: Weekly
        category: service
        entry: {schedule: {cron: "0 10 * * MON"}}
        steps:
          - id: push
            send: {channels: [sms], template: msg}
        """), encoding="utf-8")
    book.customer(external_id="C1")
    result = CliRunner().invoke(build_app(), ["plan", "--from", "2027-03-01T00:00:00+00:00",
                                              "--at", "2027-03-02T00:00:00+00:00", "--json", "--dry-run"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code == 0, result.output
    # The planner says which journey file it left out (it names no validation problem of any kind).
    assert any("zz-t.yaml is invalid" in r.getMessage() for r in caplog.records)
    assert '"journey": "weekly"' in result.stdout
    emitted = emit_event("complaint.filed", "C1", {"category": "service"}, event_id="K-1",
                         occurred_at=utc(2027, 3, 1, 14), url=book.url)
    assert emitted.touches == 1
    assert {t.journey_id for t in book.touches()} == {"other"}
    with Session(get_engine(book.url)) as session:
        assert all(e.processed_at is not None for e in session.exec(select(Event)).all())
