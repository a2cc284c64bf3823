"""The delivery settings' marketing SMS footer is added to every marketing SMS and counted in its
``max_segments``: a footer that pushes a text over its budget is refused where the file lands, at the
footer's line, as ``journeys validate`` refuses it, and the settings in force stay. Before, validate
named only the template's line and the file landed all the same, so once approved every such SMS
failed at dispatch. A template over its budget with the shipped footer is its own problem, not the
footer's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.language.footer_check import footer_overruns
from engine.language.problems import display_path
from engine.language.settings_model import DeliveryConfig
from engine.language.settings_review import in_force_delivery, refused_settings
from engine.language.template_check import sample_contexts
from engine.language.templates import Renderer, RenderError
from engine.language.validation import validate
from store.db import make_engine
from tests.review_support import config_copy, set_setting

ROOT = Path(__file__).resolve().parents[2]
# Fits every shipped marketing SMS: the shipped footer.
SHIPPED = "回复TD退订"
# Pushes the shipped silver weekly push (2 segments at most) to 3.
LONG = ("如不希望再收到本类关怀短信，请回复TD退订，我们将在二十四小时内为您处理完毕并短信告知结果；"
        "退订后您仍可正常接收保单服务与理赔进度通知；如有疑问请致电客服热线转人工服务，或在APP内联系您的专属顾问")


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("JOURNEYS_CACHE_DIR", str(tmp_path / "cache"))
    return config_copy(tmp_path, monkeypatch)


def _footer_line(config: Path) -> int:
    lines = (config / "delivery.yaml").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.startswith("marketing_sms_footer:"))


def _footer_problems(problems: list[object]) -> list[str]:
    return [str(p) for p in problems if "marketing_sms_footer: with this footer" in str(p)]


def test_a_footer_pushing_a_marketing_sms_over_budget_is_refused_where_it_lands(db_url: str, config: Path) -> None:
    engine = make_engine(db_url)
    try:
        before = in_force_delivery(engine)  # the shipped file lands at install
        assert isinstance(before, DeliveryConfig) and before.marketing_sms_footer == SHIPPED
        set_setting(config / "delivery.yaml", "marketing_sms_footer", LONG)
        line = _footer_line(config)

        validated = _footer_problems(validate().problems)
        refused = _footer_problems(refused_settings())
        assert validated and refused == validated  # the same problems, by the same check
        assert all(p.startswith(f"{config / 'delivery.yaml'}:{line}:") for p in refused), refused
        assert any("silver_weekly_push/sms.zh-CN.j2: SMS is 3 segments" in p for p in refused), refused
        assert in_force_delivery(engine) == before  # refused whole: the footer in force stays

        set_setting(config / "delivery.yaml", "marketing_sms_footer", "回复TD退订本类短信")  # fits: lands
        assert _footer_problems(refused_settings()) == []
        assert _footer_problems(validate().problems) == []
    finally:
        engine.dispose()


def test_a_template_over_budget_with_the_shipped_footer_is_not_the_footers_problem(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A template grown until it fits its budget alone but not with the shipped footer: its own line names
    it, and the delivery file keeping the shipped footer (or one as long) is not refused for it."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    monkeypatch.setenv("JOURNEYS_TEMPLATES_DIR", str(templates))
    sms = templates / "silver_weekly_push" / "sms.zh-CN.j2"
    body = sms.read_text(encoding="utf-8").strip().removesuffix(SHIPPED)
    context = sample_contexts("sms", "zh-CN")[0][0]

    def segments(footer: str) -> int:
        rendered = Renderer(templates, footer=None, configured_footer=footer, auto_reload=False)
        try:
            return rendered.render("silver_weekly_push", "sms", context, "zh-CN").segments
        except RenderError:
            return 3
    while segments(SHIPPED) <= 2:
        body += "好"
        sms.write_text(body + "\n", encoding="utf-8")
    assert segments("") <= 2  # fits alone: the shipped footer is what tips it over
    problems = [str(p) for p in validate().problems]
    assert any("silver_weekly_push/sms.zh-CN.j2" in p and "3 segments" in p for p in problems), problems
    assert _footer_problems(problems) == []
    assert _footer_problems(refused_settings()) == []
    set_setting(config / "delivery.yaml", "marketing_sms_footer", "回复TT退订")  # as long as the shipped one
    assert _footer_problems(refused_settings()) == []


def test_an_edit_of_a_file_a_template_includes_is_seen(tmp_path: Path) -> None:
    """The check is remembered per footer and templates folder: an edit of any file in it, not only of an
    SMS file, is judged again (a template may include another file)."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    sms = templates / "silver_weekly_push" / "sms.zh-CN.j2"
    part = templates / "silver_weekly_push" / "body.txt"
    part.write_text(sms.read_text(encoding="utf-8"), encoding="utf-8")
    sms.write_text('{% include "silver_weekly_push/body.txt" %}', encoding="utf-8")
    footer = "如不希望再收到本类关怀短信请回复TD退订，退订后您仍可正常接收保单服务与理赔进度通知"
    assert footer_overruns(templates, footer) == []
    part.write_text(part.read_text(encoding="utf-8").strip() + "本周更有多项专属关怀服务等您体验" * 3, encoding="utf-8")
    assert [file for file, _why in footer_overruns(templates, footer)] == [display_path(sms)]
