"""The dispatch renderer caches file lookups per batch: it renders exactly what ``engine.language.rendering``
renders, and a template edited between batches is used from the next batch on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session

from channels.base import RenderedMessage
from channels.template_files import available_templates, template_file
from engine.language import rendering
from engine.language.paths import templates_dir
from engine.sending import render_batch
from engine.sending.claiming import ClaimedTouch
from engine.sending.render_batch import BatchRenderer, StoreRenderer
from store.clock import utcnow
from store.db import make_engine
from store.models import Customer
from tests.dispatch_support import make_customers


def test_batch_renderer_renders_every_shipped_template_as_the_renderer_does() -> None:
    root = templates_dir()
    plain, batched = rendering.Renderer(root), BatchRenderer(root)
    batched.begin_batch()
    compared = 0
    for name in available_templates(root):
        for channel in ("sms", "wechat", "email"):
            for locale in rendering.LOCALES:
                if not template_file(root, name, channel, locale).is_file():
                    continue
                context = rendering.sample_context(locale)
                try:
                    expected: object = plain.render(name, channel, context, locale)
                except rendering.RenderError as exc:
                    expected = str(exc)
                for _ in range(2):  # the second time from the caches
                    try:
                        got: object = batched.render(name, channel, context, locale)
                    except rendering.RenderError as exc:
                        got = str(exc)
                    assert got == expected, (name, channel, locale)
                compared += 1
    assert compared > 40


def test_an_edit_between_batches_is_used_and_errors_name_the_field(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    shutil.copytree(templates_dir(), root)
    name = next(n for n in available_templates(root) if template_file(root, n, "wechat", "zh-CN").is_file())
    wechat = template_file(root, name, "wechat", "zh-CN")
    sms = template_file(root, name, "sms", "zh-CN")
    renderer = BatchRenderer(root)
    context = rendering.sample_context()

    renderer.begin_batch()
    before = renderer.render(name, "wechat", context)
    wechat.write_text("first: '新的开头 {{ customer.name }}'\n", encoding="utf-8")
    assert renderer.render(name, "wechat", context) == before  # within a batch: as read at its start
    renderer.begin_batch()
    assert renderer.render(name, "wechat", context).wechat_data == {"first": "新的开头 王小明"}

    if sms.is_file():
        sms.write_text("您好 {{ customer.nmae }}", encoding="utf-8")
        renderer.begin_batch()
        with pytest.raises(rendering.RenderError, match="nmae"):
            renderer.render(name, "sms", context)

    wechat.write_text("first: '{{ customer.nmae }}'\n", encoding="utf-8")
    renderer.begin_batch()
    with pytest.raises(rendering.RenderError, match="field 'first'"):
        renderer.render(name, "wechat", context)


def test_a_template_file_is_compiled_again_only_when_its_text_changed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "templates"
    shutil.copytree(templates_dir(), root)
    sms = template_file(root, "silver_weekly_push", "sms", "zh-CN")
    renderer = BatchRenderer(root)
    compiled: list[str | None] = []
    compile_source = renderer.plain.compile

    def counted(source: str, name: str | None = None, filename: str | None = None) -> object:
        compiled.append(name)
        return compile_source(source, name, filename)

    monkeypatch.setattr(renderer.plain, "compile", counted)
    context = rendering.sample_context()

    texts = []
    for _ in range(3):
        renderer.begin_batch()
        texts.append(renderer.render("silver_weekly_push", "sms", context).text)
    assert compiled == ["silver_weekly_push/sms.zh-CN.j2"] and len(set(texts)) == 1  # each batch read the file

    sms.write_text("{{ customer.name }}您好，新版本", encoding="utf-8")
    renderer.begin_batch()
    assert renderer.render("silver_weekly_push", "sms", context).text.startswith("王小明您好，新版本")
    assert compiled == ["silver_weekly_push/sms.zh-CN.j2"] * 2


def _touch(customer_id: int, template: str, channel: str) -> ClaimedTouch:
    return ClaimedTouch(customer_id * 10 + len(channel), f"k-{template}-{channel}", customer_id, "j1", "s1", "2026-01",
                        "marketing", False, channel, [], template, 1, utcnow())


def test_a_link_is_signed_only_for_a_template_that_may_show_it(db_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing the unsubscribe link (an HMAC per message) is skipped for a template none of whose files
    names ``unsubscribe_url``; a template that names it, or renders another file, still gets it."""
    monkeypatch.setenv("JOURNEYS_SECRET_KEY", "k" * 32)
    root = tmp_path / "templates"
    shutil.copytree(templates_dir(), root)
    shutil.copytree(root / "silver_weekly_push", root / "including")
    (root / "including" / "sms.zh-CN.j2").write_text('{% include "silver_weekly_push/sms.zh-CN.j2" %}',
                                                      encoding="utf-8")
    signed: list[str] = []
    real = render_batch.signed_unsubscribe_link

    def counted(customer: Customer, channel: str) -> str | None:
        signed.append(channel)
        return real(customer, channel)

    monkeypatch.setattr(render_batch, "signed_unsubscribe_link", counted)
    engine = make_engine(db_url)
    [customer_id] = make_customers(engine, 1)
    touches = [_touch(customer_id, "silver_weekly_push", "sms"),
               _touch(customer_id, "platinum_health_lecture", "email"), _touch(customer_id, "including", "sms")]
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        sms, email, including = StoreRenderer(str(root)).render_all(session, touches, {customer_id: customer},
                                                                    utcnow())
    engine.dispose()
    assert signed == ["email", "sms"]  # the lecture's e-mail shows the link; the including SMS might
    assert isinstance(email, RenderedMessage) and "/unsubscribe/" in email.text
    assert isinstance(sms, RenderedMessage) and isinstance(including, RenderedMessage) and sms.text == including.text
    assert not render_batch.may_use_link(root, "silver_weekly_push")
    assert render_batch.may_use_link(root, "platinum_health_lecture") and render_batch.may_use_link(root, "no_such")


def test_a_part_no_template_of_the_batch_names_is_not_looked_up(db_url: str) -> None:
    """A batch of a template that shows only the customer reads no policy, claim, event or enrollment row;
    one whose template shows the policy reads it, and renders as the preview (``build_context``) does."""
    from datetime import date, timedelta

    from sqlalchemy import event

    from engine.language.rendering import build_context, render
    from store.models import Policy

    engine = make_engine(db_url)
    [customer_id] = make_customers(engine, 1)
    now = utcnow()
    with Session(engine) as session:
        session.add(Policy(external_id="P-1", customer_id=customer_id, product_line="health", annual_premium=1280.0,
                           start_date=date(2026, 1, 1), expiry_date=now.date() + timedelta(days=30)))
        session.commit()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _k, sql, *_: statements.append(sql.lower()))
    root = str(templates_dir())
    tables = ("from policy", "from claim", "from event", "from enrollment", "join event")
    with Session(engine) as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        statements.clear()
        [weekly] = StoreRenderer(root).render_all(session, [_touch(customer_id, "silver_weekly_push", "sms")],
                                                  {customer_id: customer}, now)
        assert isinstance(weekly, RenderedMessage) and "客户0" in weekly.text
        assert not [sql for sql in statements if any(t in sql for t in tables)]
        statements.clear()
        [renewal] = StoreRenderer(root).render_all(session, [_touch(customer_id, "renewal_reminder", "sms")],
                                                   {customer_id: customer}, now)
        assert any("from policy" in sql for sql in statements)
        preview = render("renewal_reminder", "sms", build_context(session, customer, now=now), root=templates_dir())
    engine.dispose()
    assert isinstance(renewal, RenderedMessage) and renewal.text == preview.text
    assert str(now.date() + timedelta(days=30)) in renewal.text
    assert render_batch.parts_named(templates_dir(), "renewal_reminder") >= {"policy"}
    assert "policy" not in render_batch.parts_named(templates_dir(), "silver_weekly_push")


def test_a_batch_reads_the_event_types_once_and_says_coded_values_in_words(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``event.words`` takes the words of config/events.yaml; a batch of touches with events reads the
    file's types once, not once per touch (each reading stats the file on the send path)."""
    from engine.language import event_types
    from store.models import Event

    root = tmp_path / "templates"
    shutil.copytree(templates_dir() / "silver_weekly_push", root / "worded")
    for old in (root / "worded").glob("*.j2"):
        old.unlink()
    source = "严重程度：{{ event.words.severity }}；原值 {{ event.data.severity }}"
    (root / "worded" / "sms.zh-CN.j2").write_text(source, encoding="utf-8")
    engine = make_engine(db_url)
    ids = make_customers(engine, 6)
    now = utcnow()
    severities = ["high", "low", "urgent", "normal", "medium", "unheard-of"]
    with Session(engine) as session:
        events = [Event(external_id=f"e-{i}", type="complaint.filed", customer_id=i, occurred_at=now, received_at=now,
                        data={"category": "claims", "severity": s, "text": "x", "source": "app"})
                  for i, s in zip(ids, severities, strict=True)]
        session.add_all(events)
        session.commit()
        touches = [ClaimedTouch(e.id or 0, f"k-{e.id}", e.customer_id, "j1", "s1", f"event-{e.id}", "service", False,
                                "sms", [], "worded", 1, now) for e in events]
        customers = {i: c for i in ids if (c := session.get(Customer, i)) is not None}
        readings: list[int] = []
        real = event_types.current

        def counted() -> dict[str, event_types.EventTypeSpec]:
            readings.append(1)
            return real()

        monkeypatch.setattr(event_types, "current", counted)
        rendered = StoreRenderer(str(root)).render_all(session, touches, customers, now)
    engine.dispose()
    texts = [m.text if isinstance(m, RenderedMessage) else repr(m) for m in rendered]
    assert [t.split("；")[0] for t in texts] == ["严重程度：高", "严重程度：低", "严重程度：紧急", "严重程度：普通",
                                                "严重程度：中", "严重程度：unheard-of"]
    assert [t.split("；")[1].split()[:2] for t in texts] == [["原值", s] for s in severities], texts
    assert len(readings) == 1
