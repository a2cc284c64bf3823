"""Rendering: strict variables, SMS segments, the marketing opt-out line, locales, e-mail and WeChat parts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from channels.sms_segments import sms_length
from engine.cli import build_app
from engine.language.rendering import (
    Renderer,
    RenderError,
    build_context,
    check_templates,
    render,
    render_task_script,
    sample_context,
    wechat_template_data,
    with_footer,
)
from store.db import session_scope
from store.models import AppUser, Customer, Policy

FOOTER = "回复TD退订"


def write_template(root: Path, name: str, files: dict[str, str], *, category: str = "service",
                   max_segments: int = 2, template_id: str = "TPL_X") -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.yaml").write_text(
        f"description: test\ncategory: {category}\nsms:\n  max_segments: {max_segments}\n"
        f"wechat:\n  template_id: {template_id}\n  url: https://m.example.invalid/x\n",
        encoding="utf-8",
    )
    for filename, text in files.items():
        (folder / filename).write_text(text, encoding="utf-8")


# --- SMS segments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension table: two septets each
        ("€" * 80 + "a", "GSM-7", 161, 2),
        ("{}" * 40 + "[", "GSM-7", 162, 2),
        # 152 + 77×2 = 306 units would fit two parts of 153 if counted blindly, but an escape
        # pair is never split: the 77th euro sign needs a third part.
        ("a" * 152 + "€" * 77, "GSM-7", 306, 3),
        ("中" * 70, "UCS-2", 70, 1),
        ("中" * 71, "UCS-2", 71, 2),
        ("中" * 134, "UCS-2", 134, 2),
        ("中" * 135, "UCS-2", 135, 3),
        ("a" * 69 + "中", "UCS-2", 70, 1),  # one Chinese character makes the whole text UCS-2
        ("a" * 70 + "中", "UCS-2", 71, 2),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 35 + "a", "UCS-2", 71, 2),
        ("Ça coûte", "UCS-2", 8, 1),  # 'û' is not in GSM 03.38
        ("Ça va à Zürich", "GSM-7", 14, 1),  # these accented letters are
        ("", "GSM-7", 0, 0),
    ],
)
def test_sms_length(text: str, encoding: str, units: int, segments: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)


# --- strict variables --------------------------------------------------------------------------------


def test_undefined_variable_is_an_error_naming_template_and_line(tmp_path: Path) -> None:
    write_template(tmp_path, "typo", {"sms.zh-CN.j2": "【安心保险】\n{{ customer.nick_name }}您好"})
    with pytest.raises(RenderError) as info:
        Renderer(tmp_path, FOOTER).render("typo", "sms", sample_context("zh-CN"))
    message = str(info.value)
    assert "typo" in message and "nick_name" in message
    assert info.value.line == 2
    assert info.value.path == "typo/sms.zh-CN.j2"


def test_missing_context_part_is_an_error_not_a_blank(tmp_path: Path) -> None:
    write_template(tmp_path, "renewal", {"sms.zh-CN.j2": "保单将于{{ policy.expiry_date }}到期"})
    context = sample_context("zh-CN")
    from dataclasses import replace

    with pytest.raises(RenderError, match="'policy' is undefined"):
        Renderer(tmp_path, FOOTER).render("renewal", "sms", replace(context, policy=None))
    ok = Renderer(tmp_path, FOOTER).render("renewal", "sms", context)
    assert ok.text == f"保单将于{context.policy.expiry_date.isoformat()}到期"  # type: ignore[union-attr]


def test_unknown_event_data_field_is_an_error(tmp_path: Path) -> None:
    write_template(tmp_path, "ev", {"task.zh-CN.j2": "NPS {{ event.data.nps }}"})
    from dataclasses import replace

    from engine.language.rendering import EventView

    context = replace(sample_context("zh-CN"), event=EventView("survey.answered", {"csat": 2}))
    with pytest.raises(RenderError, match="nps"):
        Renderer(tmp_path, FOOTER).render_task_script("ev", context)


# --- the marketing footer and the segment budget -----------------------------------------------------


def test_marketing_sms_gets_the_opt_out_line_once(tmp_path: Path) -> None:
    write_template(tmp_path, "push", {"sms.zh-CN.j2": "【安心保险】{{ customer.name }}您好，本周礼包已上线。"},
                   category="marketing")
    write_template(tmp_path, "push_has", {"sms.zh-CN.j2": "【安心保险】本周礼包已上线。回复TD退订"},
                   category="marketing")
    write_template(tmp_path, "service", {"sms.zh-CN.j2": "【安心保险】您的理赔已受理。"}, category="service")
    rend = Renderer(tmp_path, FOOTER)
    context = sample_context("zh-CN")

    added = rend.render("push", "sms", context).text
    assert added == "【安心保险】王小明您好，本周礼包已上线。回复TD退订"
    assert added.count(FOOTER) == 1
    assert rend.render("push_has", "sms", context).text.count(FOOTER) == 1
    assert FOOTER not in rend.render("service", "sms", context).text
    assert with_footer(added, FOOTER) == added  # idempotent
    assert with_footer("Hi there.", "Reply TD to unsubscribe") == "Hi there. Reply TD to unsubscribe"


def test_footer_comes_from_delivery_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "delivery.yaml").write_text("marketing_sms_footer: 拒收请回复TD\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    write_template(tmp_path / "t", "push", {"sms.zh-CN.j2": "本周礼包已上线。"}, category="marketing")
    assert Renderer(tmp_path / "t").render("push", "sms", sample_context()).text == "本周礼包已上线。拒收请回复TD"


def test_sms_over_its_segment_budget_is_an_error(tmp_path: Path) -> None:
    # 62 + 3 (the name) = 65 units fits one segment; the opt-out line (6) makes it 71: the footer counts.
    write_template(tmp_path, "long", {"sms.zh-CN.j2": "中" * 62 + "{{ customer.name }}"}, category="marketing",
                   max_segments=1)
    with pytest.raises(RenderError, match=r"'long'.*2 segments \(UCS-2, 71 units\)"):
        Renderer(tmp_path, FOOTER).render("long", "sms", sample_context("zh-CN"))
    write_template(tmp_path, "longer", {"sms.zh-CN.j2": "中" * 70}, category="marketing", max_segments=1)
    with pytest.raises(RenderError, match=r"'longer'.*2 segments \(UCS-2, 76 units\).*max_segments 1"):
        Renderer(tmp_path, FOOTER).render("longer", "sms", sample_context("zh-CN"))
    ok = Renderer(tmp_path, FOOTER)
    write_template(tmp_path, "fits", {"sms.zh-CN.j2": "中" * 64}, category="marketing", max_segments=1)
    assert ok.render("fits", "sms", sample_context("zh-CN")).segments == 1  # 64 + 6 = 70


# --- locales -----------------------------------------------------------------------------------------


def test_locale_of_the_customer_with_fallback_to_zh_cn(tmp_path: Path) -> None:
    from dataclasses import replace

    from engine.language.rendering import CustomerView

    write_template(tmp_path, "both", {"sms.zh-CN.j2": "{{ customer.tier_label }}会员", "sms.en.j2":
                                      "{{ customer.tier_label }} member"})
    write_template(tmp_path, "zh_only", {"sms.zh-CN.j2": "{{ customer.tier_label }}会员"})
    rend = Renderer(tmp_path, FOOTER)
    base = sample_context("zh-CN")
    english = replace(base, customer=CustomerView("Alex", "silver", "en"))
    french = replace(base, customer=CustomerView("Amélie", "gold", "fr-FR"))

    assert (rend.render("both", "sms", base).text, rend.render("both", "sms", base).locale) == ("白银会员", "zh-CN")
    assert (rend.render("both", "sms", english).text, rend.render("both", "sms", english).locale) == (
        "Silver member", "en")
    fallback = rend.render("zh_only", "sms", english)
    assert (fallback.text, fallback.locale) == ("白银会员", "zh-CN")  # labels follow the file's locale
    assert rend.render("both", "sms", french).text == "黄金会员"
    assert rend.render("both", "sms", base, locale="en").text == "Silver member"


# --- e-mail and WeChat ----------------------------------------------------------------------------------


def test_email_parts_and_autoescape_only_in_html(tmp_path: Path) -> None:
    from dataclasses import replace

    from engine.language.rendering import CustomerView

    write_template(tmp_path, "mail", {"email.zh-CN.j2": (
        "{% block subject %}\n  {{ customer.name }}，您的保单\n{% endblock %}\n"
        "{% block text %}{{ customer.name }}您好：\n\n保单{{ policy.expiry_date | date }}到期。{% endblock %}\n"
        "{% block html %}<p>{{ customer.name }}您好</p>{% endblock %}"
    )})
    context = replace(sample_context("zh-CN"), customer=CustomerView("A&B <x>", "gold", "zh-CN"))
    message = Renderer(tmp_path, FOOTER).render("mail", "email", context)
    assert message.subject == "A&B <x>，您的保单"
    assert message.text.startswith("A&B <x>您好：\n\n保单2026年12月23日到期")
    assert message.html == "<p>A&amp;B &lt;x&gt;您好</p>"


def test_email_without_html_block_gets_escaped_text(tmp_path: Path) -> None:
    write_template(tmp_path, "plain", {"email.zh-CN.j2": "{% block subject %}S{% endblock %}"
                                                         "{% block text %}a < b\n\nc{% endblock %}"})
    message = Renderer(tmp_path, FOOTER).render("plain", "email", sample_context())
    assert message.html == "<p>a &lt; b</p>\n<p>c</p>"
    write_template(tmp_path, "nosubject", {"email.zh-CN.j2": "{% block text %}x{% endblock %}"})
    with pytest.raises(RenderError, match=r"no \{% block subject %\}"):
        Renderer(tmp_path, FOOTER).render("nosubject", "email", sample_context())


def test_wechat_fields_are_rendered_into_template_data(tmp_path: Path) -> None:
    write_template(tmp_path, "wx", {"wechat.zh-CN.yaml": (
        'first: "{{ customer.name }}您好"\nkeyword1: "{{ claim.amount | money }}"\n'
        "keyword2: \"{{ now_local.strftime('%Y-%m-%d') }}\"\nremark: 点击查看\n"
    )}, template_id="TPL_CLAIM")
    message = Renderer(tmp_path, FOOTER).render("wx", "wechat", sample_context())
    assert message.wechat_template_id == "TPL_CLAIM"
    assert message.wechat_url == "https://m.example.invalid/x"
    assert wechat_template_data(message) == {
        "first": {"value": "王小明您好"},
        "keyword1": {"value": "¥3,560.00"},
        "keyword2": {"value": "2026-11-23"},
        "remark": {"value": "点击查看"},
    }
    write_template(tmp_path, "wx_bad", {"wechat.zh-CN.yaml": 'first: "ok"\nremark: "{{ advisor.phone }}"\n'})
    with pytest.raises(RenderError) as info:
        Renderer(tmp_path, FOOTER).render("wx_bad", "wechat", sample_context())
    assert "remark" in str(info.value) and info.value.line == 2


# --- checking all templates -----------------------------------------------------------------------------


def test_check_templates_reports_file_and_line(tmp_path: Path) -> None:
    write_template(tmp_path, "good", {"sms.zh-CN.j2": "{{ customer.name }}您好", "sms.en.j2": "Hi"})
    write_template(tmp_path, "bad", {"sms.zh-CN.j2": "ok\n{{ customr.name }}", "task.en.j2": "{{ policy.nope }}"})
    (tmp_path / "broken_meta").mkdir()
    (tmp_path / "broken_meta" / "meta.yaml").write_text("category: promo\n", encoding="utf-8")
    problems = check_templates(tmp_path)
    texts = [(p.path.replace("\\", "/").split("/")[-2:], p.line, p.message) for p in problems]
    assert len(problems) == 3, texts
    assert any(path == ["bad", "sms.zh-CN.j2"] and line == 2 and "customr" in msg for path, line, msg in texts)
    assert any(path == ["bad", "task.en.j2"] and "nope" in msg for path, line, msg in texts)
    assert any(path == ["broken_meta", "meta.yaml"] and "category" in msg for path, line, msg in texts)


def test_shipped_templates_all_render(project_root: Path) -> None:
    assert [str(p) for p in check_templates(project_root / "templates")] == []


# --- context from the store, and preview ----------------------------------------------------------------


def _customer_with_policies(url: str) -> None:
    now = datetime(2026, 11, 20, 2, tzinfo=UTC)
    with session_scope(url) as s:
        advisor = AppUser(username="li", display_name="李顾问", role="agent", password_hash="x", created_at=now)
        s.add(advisor)
        s.flush()
        customer = Customer(external_id="C-1", name="张伟", phone="+8613812345678", email="zhang.wei@example.com",
                            tier="silver", locale="zh-CN", advisor_id=advisor.id, created_at=now, updated_at=now,
                            consent_sms=True)
        s.add(customer)
        s.flush()
        assert customer.id is not None
        for ext, line, expiry, status in [("P-old", "motor", date(2025, 1, 1), "lapsed"),
                                          ("P-later", "life", date(2027, 6, 1), "active"),
                                          ("P-next", "health", date(2026, 12, 20), "active")]:
            s.add(Policy(external_id=ext, customer_id=customer.id, product_line=line, annual_premium=1200,
                         start_date=date(2025, 12, 20), expiry_date=expiry, status=status))


def test_context_from_the_store_has_no_raw_contact_details(db_url: str) -> None:
    _customer_with_policies(db_url)
    with session_scope(db_url) as s:
        from sqlmodel import select

        customer = s.exec(select(Customer).where(Customer.external_id == "C-1")).one()
        context = build_context(s, customer, now=datetime(2026, 11, 20, 2, tzinfo=UTC))
    variables = context.variables("zh-CN")
    assert variables["customer"]["tier_label"] == "白银"
    assert variables["policy"]["product_line_label"] == "健康险"  # the active policy expiring next
    assert variables["advisor"] == {"name": "李顾问"}
    assert variables["now_local"].utcoffset().total_seconds() == 8 * 3600
    flat = repr(variables)
    assert "13812345678" not in flat and "zhang.wei" not in flat


def test_preview_masks_personal_data(db_url: str, tmp_path: Path) -> None:
    _customer_with_policies(db_url)
    write_template(tmp_path, "hello", {
        "sms.zh-CN.j2": "{{ customer.name }}您好，{{ policy.product_line_label }}保单{{ policy.expiry_date }}到期。",
        "task.zh-CN.j2": "请致电{{ customer.name }}，顾问{{ advisor.name }}",
    })
    result = CliRunner().invoke(build_app(), ["preview", "hello", "--customer", "C-1", "--templates", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "张*您好，健康险保单2026-12-20到期。" in result.output
    assert "1 segment(s), UCS-2" in result.output
    assert "138****5678" in result.output
    assert "张伟" not in result.output and "13812345678" not in result.output
    missing = CliRunner().invoke(build_app(), ["preview", "hello", "--customer", "NOPE", "--templates",
                                               str(tmp_path)])
    assert missing.exit_code == 1 and "no customer" in missing.output


def test_module_level_render_uses_the_templates_folder(tmp_path: Path) -> None:
    write_template(tmp_path, "t", {"sms.zh-CN.j2": "你好{{ customer.name }}",
                                   "task.zh-CN.j2": "打给{{ customer.name }}"})
    assert render("t", "sms", sample_context(), root=tmp_path).text == "你好王小明"
    assert render_task_script("t", sample_context(), root=tmp_path) == "打给王小明"
    with pytest.raises(RenderError, match="unknown channel"):
        render("t", "fax", sample_context(), root=tmp_path)
