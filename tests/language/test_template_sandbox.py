"""Templates are untrusted: every render path is sandboxed and bounded (security review H1).

The payloads are the reviewer's: from Jinja's ``lipsum``/``cycler`` globals to ``os``, which
printed the data and session keys into an SMS, ran ``id`` and wrote files, in preview, in
dispatch (the batch renderer), in ``journeys validate`` and on the agent's task page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.rendering import Renderer, RenderError, check_templates, sample_context
from engine.language.template_check import check_template_syntax
from engine.sending.render_batch import BatchRenderer
from tests.language.conftest import SmsTemplates
from tests.language.test_rendering import write_template

SECRET = "secret-key-material-that-must-never-leave"


def payloads(marker: Path) -> dict[str, str]:
    return {
        "lipsum-environ": "{{ lipsum.__globals__['os'].environ['JOURNEYS_DATA_KEY'] }}",
        "cycler-popen": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "joiner-system": f"{{{{ joiner.__init__.__globals__.os.system('touch {marker}') }}}}",
        "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "self-context": "{{ self._TemplateReference__context }}",
        "item-dunder": "{{ customer['__class__'] }}",
        "format-escape": "{{ '{0.__class__}'.format(customer) }}",
    }


BOMBS = {
    "repeat": '{{ "x" * 1000000000 }}',
    "power": "{{ 10 ** 100000000 }}",
    "chained-power": "{{ ((((10 ** 60) ** 60) ** 60) ** 60) ** 60 }}",
    "nested-ranges": "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}done",
    "long-output": "{% for i in range(90000) %}0123456789{% endfor %}",
    # No loop and no output: each call makes two more, 2**18 in all (2**30 at depth 30, hours of CPU).
    "macro-fan-out": "{% macro f(n) %}{% if n < 17 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
                     "{{ f(0) }}done",
}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_KEY", SECRET)
    monkeypatch.setenv("JOURNEYS_SECRET_KEY", SECRET)


@pytest.mark.parametrize("renderer_class", [Renderer, BatchRenderer])
@pytest.mark.parametrize("kind", ["payload", "bomb"])
def test_no_render_path_runs_python_or_runs_away(tmp_path: Path, secrets: None, renderer_class: type[Renderer],
                                                 kind: str) -> None:
    marker = tmp_path / "pwned"
    cases = payloads(marker) if kind == "payload" else BOMBS
    root = tmp_path / "templates"
    for name, body in cases.items():
        write_template(root, name.replace("-", "_"), {"sms.zh-CN.j2": body, "task.zh-CN.j2": body})
    renderer = renderer_class(root, footer="")
    for name in cases:
        template = name.replace("-", "_")
        for render in (lambda t=template: renderer.render(t, "sms", sample_context(), "zh-CN").text,
                       lambda t=template: renderer.render_task_script(t, sample_context(), "zh-CN")):
            with pytest.raises(RenderError) as caught:
                out = render()
                assert SECRET not in out and "uid=" not in out, name
            assert SECRET not in str(caught.value), name
    assert not marker.exists()


def test_validate_rejects_private_names_at_their_line_without_running_them(tmp_path: Path, secrets: None) -> None:
    marker = tmp_path / "pwned"
    root = tmp_path / "templates"
    for name, body in payloads(marker).items():
        write_template(root, name.replace("-", "_"), {"sms.zh-CN.j2": "您好\n" + body})
    syntax = check_template_syntax(root, [n.replace("-", "_") for n in payloads(marker)])
    flagged = {p.path.split("/")[-2] for p in syntax if "names starting with _ are not allowed" in p.message}
    # Each payload reads a private name except the format-string one, which the sandbox stops at run time.
    assert flagged == {n.replace("-", "_") for n in payloads(marker)} - {"format_escape"}
    assert all(p.line == 2 for p in syntax)
    rendered = check_templates(root)
    assert {p.path.split("/")[-2] for p in rendered} == {n.replace("-", "_") for n in payloads(marker)}
    assert not marker.exists() and not any(SECRET in p.message for p in rendered)


def test_templates_keep_their_data_helpers_and_lose_the_rest(sms: SmsTemplates) -> None:
    sms.write(ok="{% for i in range(3) %}{{ i }}{% endfor %} {{ dict(a=1)['a'] }} {{ customer.name }}",
              gone="{{ lipsum(1) }}")
    assert sms.render("ok") == "012 1 王小明"
    with pytest.raises(RenderError, match="lipsum"):
        sms.render("gone")
