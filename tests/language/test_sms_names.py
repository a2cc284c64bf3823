"""An English SMS must fit its ``max_segments`` for a customer whose name is in Chinese characters.

One such character makes the whole message UCS-2 (70 characters a segment instead of 160). The
template check rendered English files only with a Latin sample name, so every shipped English SMS
passed validate and then failed to render for real customers: the demo's own week failed 7 of them
(NPS survey, weekly push, content) with "SMS is 3 segments (UCS-2, 138 units), more than the
template's max_segments 2", and those customers got nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from channels.template_files import available_templates, template_file
from engine.language.paths import templates_dir
from engine.language.template_check import CJK_NAME, check_templates
from engine.language.template_context import sample_context
from engine.language.templates import Renderer, load_meta
from tests.language.test_rendering import write_template

LONG_ENGLISH = ("Hi {{ customer.name }}, your policy renews next month. Reply 1 for a callback from your "
                "advisor, or visit the app for details.")  # 113 GSM-7 characters with a Latin name


def test_an_english_sms_that_fits_only_a_latin_name_is_a_problem_at_its_file(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    write_template(root, "renewal", {"sms.en.j2": LONG_ENGLISH, "sms.zh-CN.j2": "{{ customer.name }}您好"},
                   max_segments=1)
    problems = check_templates(root)
    assert [(p.path.rsplit("/", 1)[-1], p.line) for p in problems] == [("sms.en.j2", 1)]
    assert "2 segments (UCS-2" in problems[0].message and CJK_NAME in problems[0].message
    write_template(root, "renewal", {"sms.en.j2": LONG_ENGLISH}, max_segments=2)
    assert check_templates(root) == []


def _english_sms() -> list[str]:
    root = templates_dir()
    return sorted(n for n in available_templates(root) if template_file(root, n, "sms", "en").is_file())


def test_every_shipped_template_passes_the_check() -> None:
    assert len(_english_sms()) >= 20
    assert check_templates(templates_dir()) == []


# Names as a Chinese book holds them: one to four characters, common and rare ones.
NAMES = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=4)


@given(NAMES, st.sampled_from(["silver", "gold", "platinum", "diamond", "potential"]))
def test_every_shipped_english_sms_renders_for_any_chinese_name(name: str, tier: str) -> None:
    root = templates_dir()
    renderer = Renderer(root)
    for template in _english_sms():
        context = sample_context("en", tier)
        context = dataclasses.replace(context, customer=dataclasses.replace(context.customer, name=name))
        message = renderer.render(template, "sms", context, "en")
        assert message.segments <= load_meta(root, template).max_segments, (template, name)
