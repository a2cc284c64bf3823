"""The dispatch renderer caches file lookups per batch: it renders exactly what ``engine.language.rendering``
renders, and a template edited between batches is used from the next batch on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from channels.template_files import available_templates, template_file
from engine.language import rendering
from engine.language.paths import templates_dir
from engine.sending.render_batch import BatchRenderer


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
