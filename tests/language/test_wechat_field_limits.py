"""A WeChat template value over its field type's limit is found when the template is rendered.

WeChat refuses a template send whose ``thing1`` is over 20 characters (``phrase`` 5, ...) with
errcode 47003, every time. ``journeys validate`` reports it at the field's line with the sample
data, and a customer's own data that makes a field too long is a render error (the touch fails with
that reason, or moves to its next channel) rather than a refusal by WeChat after the send began.
The stand-in refuses such values as WeChat does, so the same message is tried there too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path

import pytest

from channels.base import OutboundMessage
from channels.wechat import WeChatTemplateAdapter
from channels.wechat_fields import field_problem
from engine.language.rendering import Renderer, RenderError, sample_context
from engine.language.template_check import check_templates
from standins.wechat_api import WeChatStandin
from tests.language.test_rendering import FOOTER, write_template
from tests.standin_support import serving

FIELDS = 'thing1: "{{ customer.name }}的理赔已受理"\nphrase2: "已受理"\namount3: "¥3,560.00"\n'


@pytest.fixture
def standin() -> Iterator[WeChatStandin]:
    yield from serving(WeChatStandin())


def test_validate_reports_a_value_over_its_type_at_the_fields_line(tmp_path: Path) -> None:
    fields = 'phrase2: "已受理"\nthing1: "您的理赔申请已受理，请留意短信通知以便补充材料"\n'
    write_template(tmp_path, "claim", {"wechat.zh-CN.yaml": fields})
    [problem] = check_templates(tmp_path, configured_footer=FOOTER)
    assert problem.path.replace("\\", "/").endswith("claim/wechat.zh-CN.yaml")
    assert problem.line == 2
    assert "'thing1'" in problem.message and "23 characters" in problem.message and "47003" in problem.message


async def test_a_customers_long_name_is_a_render_error_not_a_refusal_by_wechat(
    tmp_path: Path, standin: WeChatStandin
) -> None:
    write_template(tmp_path, "claim", {"wechat.zh-CN.yaml": FIELDS})
    assert check_templates(tmp_path, configured_footer=FOOTER) == []
    renderer = Renderer(tmp_path, FOOTER)
    context = sample_context("zh-CN")
    short = renderer.render("claim", "wechat", replace(context, customer=replace(context.customer, name="王小明")))
    long_name = replace(context, customer=replace(context.customer, name="阿卜杜热合曼·买买提依明·艾尔肯江"))
    with pytest.raises(RenderError) as info:
        renderer.render("claim", "wechat", long_name)
    assert "thing1" in info.value.reason and info.value.line == 1

    # What the renderer lets through WeChat takes; what it stops, WeChat would have refused.
    long_text = "阿卜杜热合曼·买买提依明·艾尔肯江的理赔已受理"
    assert field_problem("thing1", long_text) is not None
    too_long = replace(short, wechat_data={**short.wechat_data, "thing1": long_text})
    async with aclosing(WeChatTemplateAdapter(standin.appid, standin.secret, api_base=standin.base_url,
                                              timeout=5)) as adapter:
        ok, refused = await adapter.send_batch([OutboundMessage(1, "c1:claim:s1:a", "o_short", short),
                                                OutboundMessage(2, "c2:claim:s1:a", "o_long", too_long)])
    assert ok.ok
    assert (refused.ok, refused.error_class, refused.error_code) == (False, "permanent", "47003")
    assert "too long" in (refused.error_reason or "")
    assert len(standin.log) == 1


@pytest.mark.parametrize(("field", "value", "refused"), [
    ("thing1", "一" * 20, False), ("thing1", "一" * 21, True), ("phrase3", "审核通过了吗", True),
    ("phone_number4", "+86-0766-66888866", False), ("number2", "1" * 33, True),
    ("name5", "欧阳娜娜娜娜娜娜娜娜娜", True),
    ("name5", "Alexandra Smithfield", False), ("keyword1", "一" * 200, False), ("first", "一" * 200, False),
])
def test_limits_by_type(field: str, value: str, refused: bool) -> None:
    assert (field_problem(field, value) is not None) is refused
