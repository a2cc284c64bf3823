"""Every YAML file people edit is read with the journey files' guards (engine.language.yaml_lines):
template field files and meta.yaml, and what the console reads from journey files and stored versions.

A "billion laughs" alias chain of a few hundred bytes in a template's WeChat file made
``journeys validate`` run for minutes in 3 GB; each reader now refuses it at once, the
validators at the file's line.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from console.journey_names import _from_files
from console.sla import _due_within
from engine.language.rendering import Renderer, RenderError, check_templates, sample_context
from engine.language.template_check import check_template_syntax
from engine.language.template_review import template_categories
from tests.language.test_rendering import write_template


def laughs(first_line: str) -> str:
    """A document whose aliases expand to 10**9 strings (the anchor chain starts on line 2)."""
    lines = [first_line, 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        prev = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 10)}]")
    lines.append("keyword1: [*i,*i,*i,*i,*i,*i,*i,*i,*i,*i]")
    return "\n".join(lines) + "\n"


# Memory, not seconds, shows the aliases were never expanded: 10**9 strings would take gigabytes, and a
# timed assertion would fail on a busy machine for nothing.
def _start() -> None:
    tracemalloc.start()


def _small() -> None:
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 60_000_000, peak


def test_wechat_fields_with_aliases_are_refused_at_their_line(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    write_template(root, "bomb", {"wechat.zh-CN.yaml": laughs("first: 您好")})
    _start()
    with pytest.raises(RenderError) as caught:
        Renderer(root, footer="").render("bomb", "wechat", sample_context(), "zh-CN")
    assert caught.value.path == "bomb/wechat.zh-CN.yaml" and caught.value.line == 3
    assert "aliases" in caught.value.reason
    problems = check_template_syntax(root, ["bomb"]) + check_templates(root)
    assert {(p.path.rsplit("/", 1)[-1], p.line) for p in problems} == {("wechat.zh-CN.yaml", 3)}
    assert all("aliases" in p.message for p in problems)
    _small()


def test_meta_yaml_with_aliases_is_refused_at_its_line(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    write_template(root, "bomb", {"sms.zh-CN.j2": "您好"})
    (root / "bomb" / "meta.yaml").write_text(laughs("category: service"), encoding="utf-8")
    _start()
    problems = check_template_syntax(root, ["bomb"]) + check_templates(root)
    assert problems and all(p.path.endswith("bomb/meta.yaml") and p.line == 3 for p in problems)
    assert all("aliases" in p.message for p in problems)
    with pytest.raises(RenderError, match=r"meta\.yaml:3: .*aliases"):
        Renderer(root, footer="").render("bomb", "sms", sample_context(), "zh-CN")
    _small()


def test_console_readers_skip_a_journey_file_with_aliases(tmp_path: Path) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "bomb.yaml").write_text(laughs("id: bomb\nname: x\nsteps: [{id: s, send: {template: t}}]"),
                                      encoding="utf-8")
    (folder / "good.yaml").write_text("id: good\nname: 好\nsteps: [{id: s, send: {template: g}}]\n",
                                      encoding="utf-8")
    _start()
    assert _from_files(folder) == {"good": "好"}
    assert template_categories(folder) == {"g": ""}
    assert _due_within(laughs("steps: [{id: s, task: {due_within: 2h}}]"), "s") is None
    _small()


def test_an_edited_meta_yaml_is_read_again_even_with_its_file_time_unchanged(tmp_path: Path) -> None:
    # meta.yaml is parsed once per text (a render reads it every time): the text, not the file time, decides.
    root = tmp_path / "templates"
    write_template(root, "t", {"sms.zh-CN.j2": "您好"}, max_segments=2)
    renderer = Renderer(root, footer="回复TD退订")
    assert renderer.render("t", "sms", sample_context(), "zh-CN").text == "您好"
    meta = root / "t" / "meta.yaml"
    stat = meta.stat()
    meta.write_text(meta.read_text(encoding="utf-8").replace("category: service", "category: marketing"),
                    encoding="utf-8")
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert renderer.render("t", "sms", sample_context(), "zh-CN").text == "您好回复TD退订"


def test_webhooks_yaml_with_aliases_or_bad_targets_is_a_validate_problem(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """config/webhooks.yaml was read with a plain yaml.safe_load, and ``journeys validate`` said nothing
    of a broken one; it is now read like the other settings files and reported at its line."""
    import shutil

    from engine.language.validation import validate
    from engine.language.webhook_config import load_webhooks, webhook_problems

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    webhooks = config / "webhooks.yaml"
    webhooks.write_text(laughs("targets: {}"), encoding="utf-8")
    _start()
    [problem] = webhook_problems()
    assert (problem.path.endswith("webhooks.yaml"), problem.line, "aliases" in problem.message) == (True, 3, True)
    _small()
    webhooks.write_text("targets:\n  crm: {url_env: crm_url, secret_env: CRM_SECRET}\n", encoding="utf-8")
    report = validate([Path(__file__).resolve().parents[2] / "journeys"])
    assert any(p.path.endswith("webhooks.yaml") and p.line == 2 and "url_env" in p.message
               for p in report.problems), report.problems
    webhooks.write_text("targets:\n  crm: {url_env: CRM_URL, secret_env: CRM_SECRET}\n", encoding="utf-8")
    assert list(load_webhooks().targets) == ["crm"] and webhook_problems() == []
