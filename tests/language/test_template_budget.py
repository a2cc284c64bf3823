"""One render's cost is bounded (engine.language.render_bounds): loops, sizes, work.

The reviewer's templates hung ``journeys validate`` for minutes (nested loops over a string,
which the range budget did not see) or took hundreds of megabytes before the output check
(widths and counts in filters and string methods, format widths, repeated squaring). Each is
refused at its template line, quickly and without the allocation.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from engine.language.rendering import Renderer, RenderError, check_templates, sample_context
from engine.language.template_check import check_template_syntax
from engine.sending.render_batch import BatchRenderer
from tests.language.conftest import SmsTemplates
from tests.language.test_rendering import write_template

NESTED = "{% set s = 'a'*50000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}done"

# Each one, unbounded, allocates from hundreds of megabytes to gigabytes, or runs for minutes.
COSTLY = {
    "nested_string_loops": NESTED,
    "nested_list_loops": "{% set l = [1]*300 %}{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}"
                         "{% endfor %}{% endfor %}",
    "loop_over_map": "{% for a in ('a'*50000)|map('upper') %}{% for b in ('b'*3)|list %}{% endfor %}{% endfor %}",
    "center_filter": "{{ 'x'|center(999999999)|length }}",
    "ljust_method": "{{ customer.name.ljust(999999999) }}",
    "zfill_method": "{{ '1'.zfill(999999999) }}",
    "expandtabs": "{{ ('\\t'*10).expandtabs(99999999) }}",
    "expandtabs_under_width": "{{ ('\\t'*1000).expandtabs(99999) }}",
    "percent_width": "{{ '%0999999999d' % 1 }}",
    "percent_star": "{{ '%*d' % (99999, 1) ~ '%*d%*d' % (99999, 1, 99999, 1) }}",
    "format_filter": "{{ '%0999999999d'|format(1) }}",
    "brace_width": "{{ '{0:>999999999}'.format(1) }}",
    "brace_nested_width": "{{ '{0:>{1}}{0:>{1}}{0:>{1}}'.format(1, 99999) }}",
    "format_map": "{{ '{a:>999999999}'.format_map(dict(a=1)) }}",
    "indent_long_text": "{{ ('a\\n'*50000)|indent(99999) }}",
    "wordwrap": "{{ ('a '*40000)|wordwrap(1, wrapstring='x'*50) }}",
    "truncate": "{{ 'abc'|truncate(999999999) }}",
    "replace_empty": "{{ ('a'*50000).replace('', 'b'*1000)|length }}",
    "replace_filter": "{{ ('a'*50000)|replace('', 'b'*1000)|length }}",
    "join_method": "{{ ('b'*50000).join('a'*50000)|length }}",
    "join_filter": "{{ ('a'*50000)|join('b'*50000)|length }}",
    "repeated_join": "{% set s = 'a'*40000 %}{% for i in range(20000) %}{% set x = s|join %}{% endfor %}done",
    "squaring": "{% set ns = namespace(x=2**64) %}{% for i in range(30) %}{% set ns.x = ns.x * ns.x %}"
                "{% endfor %}{{ ns.x }}",
    "concat_doubling": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
                       "{% endfor %}{{ ns.s|length }}",
    "plus_doubling": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
                     "{% endfor %}{{ ns.s|length }}",
    "to_bytes": "{{ (1).to_bytes(999999999, 'big')|length }}",
    "slice_count": "{{ [1]|slice(999999999)|list|length }}",
    "translate_table": "{{ ('a'*50000).translate({97: 'x'*40000})|length }}",
    "brace_width_as_text": "{{ '{0:{1}}'.format(1, '999999999')|length }}",
    # One list held many times: short as a list, 10**10 items as text, from a few hundred repetitions.
    "aliased_repetition": "{% set a = [0]*100 %}{% set b = [a]*100 %}{% set c = [b]*100 %}{% set d = [c]*100 %}"
                          "{% set e = [d]*100 %}{{ e|tojson|length }}",
    "aliased_literals": "{% set a = [0,0,0,0,0,0,0,0,0,0] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}"
                        "{% set c = [b,b,b,b,b,b,b,b,b,b] %}{% set d = [c,c,c,c,c,c,c,c,c,c] %}"
                        "{% set e = [d,d,d,d,d,d,d,d,d,d] %}{% set f = [e,e,e,e,e,e,e,e,e,e] %}"
                        "{% set g = [f,f,f,f,f,f,f,f,f,f] %}{{ [g,g,g,g,g,g,g,g,g,g] }}",
    "aliased_in_namespace": "{% set ns = namespace(x=[0]*10) %}{% for i in range(40) %}"
                            "{% set ns.x = (ns.x, ns.x) %}{% endfor %}{{ ns.x|string|length }}",
}


@pytest.mark.parametrize("renderer_class", [Renderer, BatchRenderer])
def test_a_costly_template_is_refused_at_its_line_quickly_without_the_memory(tmp_path: Path,
                                                                          renderer_class: type[Renderer]) -> None:
    root = tmp_path / "templates"
    for name, body in COSTLY.items():
        write_template(root, name, {"sms.zh-CN.j2": "您好\n" + body})
    renderer = renderer_class(root, footer="")
    for name in COSTLY:
        tracemalloc.start()
        try:
            with pytest.raises(RenderError) as caught:
                renderer.render(name, "sms", sample_context(), "zh-CN")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 60_000_000, (name, peak)
        assert caught.value.line == 2 and caught.value.path == f"{name}/sms.zh-CN.j2", (name, str(caught.value))
        assert "limit" in caught.value.reason or "past" in caught.value.reason, (name, caught.value.reason)


def test_validate_refuses_nested_loops_at_file_and_line_in_seconds(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    write_template(root, "hang", {"sms.zh-CN.j2": "尊敬的客户\n" + NESTED + "\n",
                                  "wechat.zh-CN.yaml": "first: 您好\nkeyword1: \"" + NESTED + "\"\n"})
    problems = check_templates(root) + check_template_syntax(root, ["hang"])
    where = sorted((p.path.rsplit("/", 2)[-1], p.line) for p in problems)
    assert where == [("sms.zh-CN.j2", 2), ("wechat.zh-CN.yaml", 2)], problems
    assert all("100,000 items" in p.message and "nested loops" in p.message for p in problems)


def test_ordinary_loops_filters_and_formats_still_render(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    body = ("{% for i in range(3) %}{{ i }}{% endfor %} {{ '%.2f'|format(250000) }} {{ '{:,}'.format(250000) }} "
            "{{ '%d' % 250000 }} {{ customer.name ~ '!' }} {{ [1, 2]|join(',') }} {{ 12345678901234567890 * 3 }} "
            "{% for x in [[1, [2]], [3]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}"
            "{% endfor %} {{ 'ab'|center(6) }}|{{ 'x'.ljust(3) }}|{{ ('a b c'|wordwrap(2))|length }}")
    write_template(root, "fine", {"sms.zh-CN.j2": body})
    text = Renderer(root, footer="").render("fine", "sms", sample_context(), "zh-CN").text
    assert text == "012 250000.00 250,000 250000 王小明! 1,2 37037036703703703670 123   ab  |x  |5"


def test_the_shipped_templates_all_render_within_the_bounds() -> None:
    assert check_templates() == []


def test_each_render_has_its_own_budget_even_in_an_imported_macro(sms: SmsTemplates) -> None:
    # Jinja caches an imported template's module (and its context) across renders: charged there, a
    # macro's loops would add up render after render until an ordinary message failed.
    sms.write(lib="{% macro spin(n) %}{% for i in range(n) %}{% endfor %}{% endmacro %}",
              user="{% import 'lib/sms.zh-CN.j2' as lib %}您好{{ lib.spin(30000) }}")
    for _ in range(4):
        assert sms.render("user") == "您好"
    sms.write(heavy="{% import 'lib/sms.zh-CN.j2' as lib %}您好\n{{ lib.spin(40000) }}{{ lib.spin(40000) }}")
    with pytest.raises(RenderError, match="100,000 items"):
        sms.render("heavy")


# 65,536 items or characters in sixteen doublings: within the size bound, and nearly free to make.
DOUBLED = ("{% set ns = namespace(a=[0], s='a') %}{% for i in range(16) %}{% set ns.a = ns.a + ns.a %}"
           "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{% set a = ns.a %}{% set s = ns.s %}")
# Each rebuilds a value under the size bound a hundred times: 6.5 million items built (and, for a
# list, measured item by item), where a thousand such rebuilds were minutes of CPU.
REBUILT = {
    "list_plus": "{% for i in range(100) %}{% set x = a + [] %}{% endfor %}done",
    "text_concat": "{% for i in range(100) %}{% set x = s ~ '' %}{% endfor %}done",
    "dict_holding_list": "{% for i in range(100) %}{% set x = dict(k=a) %}{% endfor %}done",
    "tuple_holding_list": "{% for i in range(100) %}{% set x = (a,) %}{% endfor %}done",
}


# One text or long number held many times: a short list, and many megabytes once written out.
HELD_MANY_TIMES = {
    "texts": DOUBLED + "您好\n{{ ([s]*2000)|string|length }}",
    "long_numbers": "{% set ns = namespace(x=2**64) %}{% for i in range(5) %}{% set ns.x = ns.x * ns.x %}{% endfor %}"
                    "您好\n{{ ([ns.x]*20000)|string|length }}",
}


def refused_with_peak(sms: SmsTemplates, name: str) -> tuple[RenderError, int]:
    """The refusal of template ``name`` and the most memory its render took on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(RenderError) as caught:
            sms.render(name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, peak


@pytest.mark.parametrize("name", HELD_MANY_TIMES)
def test_texts_and_numbers_in_a_list_are_sized_as_written_out(sms: SmsTemplates, name: str) -> None:
    sms.write(**{name: HELD_MANY_TIMES[name]})
    caught, peak = refused_with_peak(sms, name)
    assert caught.line == 2 and "over the 100,000 limit" in caught.reason, str(caught)
    assert "operator '*'" in caught.reason, caught.reason  # refused where the list is made
    assert peak < 5_000_000, peak


# Each reads the whole of a 65,536-item list or text three hundred times; tens of thousands of
# iterations (within the item bound) were minutes of CPU with nothing built at all.
READ_IN_A_LOOP = {
    "equality": "{% for i in range(300) %}{% if a == a %}{% endif %}{% endfor %}done",
    "membership": "{% for i in range(300) %}{% if 1 in a %}{% endif %}{% endfor %}done",
    "membership_test": "{% for i in range(300) %}{% if 1 is in a %}{% endif %}{% endfor %}done",
    "slice": "{% for i in range(300) %}{% set x = a[::-1] %}{% set y = s[::-1] %}{% endfor %}done",
    "list_method": "{% for i in range(300) %}{% set x = a.count(1) %}{% endfor %}done",
}


@pytest.mark.parametrize("name", [*REBUILT, *READ_IN_A_LOOP])
def test_a_value_rebuilt_or_read_whole_in_a_loop_is_charged_as_work(sms: SmsTemplates, name: str) -> None:
    sms.write(**{name: DOUBLED + "您好\n" + {**REBUILT, **READ_IN_A_LOOP}[name]})
    with pytest.raises(RenderError) as caught:
        sms.render(name)
    assert caught.value.line == 2, str(caught.value)
    assert "past 1,000,000 characters processed" in caught.value.reason, caught.value.reason


def test_tojson_is_bounded_while_it_writes(sms: SmsTemplates) -> None:
    # A hundred one-item lists at a 99,999-space indent: 40 million characters written before the check.
    sms.write(wide="您好\n{{ ([[1]]*100)|tojson(indent=99999)|length }}",
              fine="{{ dict(a=[1], b='<x>')|tojson(indent=2) }}|{{ [1, 'x']|tojson }}")
    tracemalloc.start()
    try:
        with pytest.raises(RenderError) as caught:
            sms.render("wide")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.line == 2 and "indent of 99,999 is over the limit" in caught.value.reason, str(caught.value)
    assert peak < 5_000_000, peak
    assert sms.render("fine") == '{\n  "a": [\n    1\n  ],\n  "b": "\\u003cx\\u003e"\n}|[1, "x"]'


def test_urlize_is_charged_for_its_cost_before_it_runs(sms: SmsTemplates) -> None:
    # 32,768 words: seconds of urlize for one call, a twentieth of the work bound as a copy would count it.
    sms.write(links=DOUBLED + "您好\n{{ (s|urlize)|length }}", short="{{ 'see www.example.com'|urlize }}")
    with pytest.raises(RenderError) as caught:
        sms.render("links")
    assert caught.value.line == 2 and "filter 'urlize' would take this render past" in caught.value.reason
    assert sms.render("short") == 'see <a href="https://www.example.com" rel="noopener">www.example.com</a>'


def test_what_a_call_is_given_is_charged_and_dates_are_not_parsed(sms: SmsTemplates) -> None:
    # loop.changed compares the whole list with the last one at every iteration; strptime compiled a
    # pattern from a format of any length (65,536 characters: about half a second a call).
    sms.write(changed=DOUBLED + "您好\n{% for i in range(300) %}{% if loop.changed(a) %}{% endif %}{% endfor %}done",
              parsed=DOUBLED + "您好\n{{ now_local.strptime('x', s) }}",
              fine="{% for i in [1, 1, 2] %}{% if loop.changed(i) %}{{ i }}{% endif %}{% endfor %}")
    with pytest.raises(RenderError) as caught:
        sms.render("changed")
    assert caught.value.line == 2 and "changed() would take this render past" in caught.value.reason, str(caught.value)
    with pytest.raises(RenderError) as caught:
        sms.render("parsed")
    assert caught.value.line == 2 and "'strptime'" in caught.value.reason and "unsafe" in caught.value.reason
    assert sms.render("fine") == "12"


# Text written inside a macro or a set block is joined when the macro or block ends: unchecked, 24
# doublings of a set block were 33 million characters, and a macro's loop wrote its text 500 times.
WRITTEN_INSIDE = {
    "set_block": "{% set ns = namespace(s='ab') %}您好\n{% for i in range(24) %}{% set ns.s %}{{ ns.s }}{{ ns.s }}"
                 "{% endset %}{% endfor %}{{ ns.s|length }}",
    "macro_loop": DOUBLED + "您好\n{% macro f() %}{% for i in range(500) %}{{ s }}{% endfor %}{% endmacro %}"
                            "{{ f()|length }}",
}


@pytest.mark.parametrize("name", WRITTEN_INSIDE)
def test_text_written_inside_a_macro_or_block_is_bounded_before_it_is_joined(sms: SmsTemplates, name: str) -> None:
    sms.write(**{name: WRITTEN_INSIDE[name]},
              fine="{% macro f(n) %}<{{ n }}>{% endmacro %}{% set x %}{{ f(1) }}{{ f(2) }}{% endset %}{{ x }}")
    caught, peak = refused_with_peak(sms, name)
    assert caught.line == 2 and "would write over 100,000 characters" in caught.reason, str(caught)
    assert peak < 5_000_000, peak
    assert sms.render("fine") == "<1><2>"
