"""The template core: reading a template folder and rendering it, with no database.

Rules it enforces (SPEC §6–7, §9):

- Jinja2 with ``StrictUndefined``: a variable the context lacks is a ``RenderError``, never
  a blank in a customer's message (``engine.language.template_context`` leaves out what a
  touch does not have, so using it fails the same way).
- Autoescape only for the HTML part of an e-mail; SMS, WeChat, subject and plain text are
  plain text and must not show ``&amp;``.
- A template without the wanted locale's file falls back to ``zh-CN``.
- Marketing SMS end with the opt-out line (``DeliveryConfig.marketing_sms_footer``), added
  once if the template does not already end with it; the length is counted in segments
  (``channels.sms_segments``) after that, and more than the template's ``max_segments``
  (``meta.yaml``, default 3) is a ``RenderError`` naming template and count.

Templates are written by marketing staff, so they are untrusted input (SPEC §9 and the
security review): every Jinja environment for message templates and call scripts is made by
``jinja_environment``, and every one is a ``TemplateSandbox`` (Jinja's immutable sandbox: no
attribute starting with ``_``, no methods that change data, no way from ``lipsum`` or
``cycler`` to ``os``). Its globals are data helpers only, and what one render may cost is
bounded (``engine.language.render_bounds``): loop iterations, calls, ranges and repetitions per
render, the size of every value a template builds, and the work its filters and methods do;
powers are small, and a message longer than ``MAX_OUTPUT`` is an error. Template YAML files
(``meta.yaml``, WeChat fields) are read with the journey files' guards (``yaml_lines``).
"""

from __future__ import annotations

import html as html_lib
import json
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from types import BuiltinMethodType
from typing import Any, cast

import jinja2
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from channels.base import RenderedMessage
from channels.sms_segments import sms_length
from channels.template_files import FILE_FOR, template_file
from channels.wechat_fields import field_problems as wechat_field_problems
from engine.language.paths import delivery_config_path
from engine.language.problems import load_config
from engine.language.render_bounds import (
    MAX_EXPONENT,
    MAX_OUTPUT,
    NestingTemplate,
    begin_render,
    bounded_concat,
    bounded_filter,
    bounded_json_dumps,
    check_brace_format,
    check_numbers,
    check_percent_format,
    check_product,
    check_str_method,
    checked,
    counted,
    counted_loop,
    end_render,
    enter_nested,
    format_values,
    safe_range,
    size_of,
    spend,
    work,
)
from engine.language.settings_model import DeliveryConfig
from engine.language.template_codegen import BoundedCodeGenerator
from engine.language.template_context import DEFAULT_LOCALE, TemplateContext, resolve_locale, script_variables
from engine.language.template_nesting import nesting_problem
from engine.language.yaml_lines import YamlError, load_located

DEFAULT_MAX_SEGMENTS = 3
DEFAULT_FOOTER = "回复TD退订"
# English messages carry the same instruction in English: the Chinese line would switch a
# GSM-7 text to UCS-2 and double or triple its segments. The keyword stays TD, which the
# inbound handler recognises. (DeliveryConfig has one footer; a per-locale one would replace this.)
EN_FOOTER = "Reply TD to unsubscribe"
RENDER_CHANNELS = ("sms", "wechat", "email", "push", "webhook")
_BABEL_LOCALE = {"zh-CN": "zh_CN", "en": "en"}


# A dataclass for the fields callers read (which template failed, where, and why); no eq or repr of
# its own, so it compares, hashes and prints as any exception does.
@dataclass(eq=False, repr=False)
class RenderError(Exception):
    """A template could not be rendered for this context; the message names template, channel and locale."""

    template: str
    channel: str
    locale: str
    reason: str
    line: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        where = f"{self.path}:{self.line}: " if self.path and self.line else ""
        super().__init__(f"{where}template {self.template!r} ({self.channel}, {self.locale}): {self.reason}")


# --- templates on disk ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateMeta:
    name: str
    description: str = ""
    category: str = "service"
    max_segments: int = DEFAULT_MAX_SEGMENTS
    wechat_template_id: str = ""
    wechat_url: str = ""
    variables: tuple[str, ...] = ()


class MetaError(ValueError):
    """A meta.yaml that cannot be read; ``line`` is where (1 when the fault is the whole file's)."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


def load_meta(root: Path, name: str) -> TemplateMeta:
    """``templates/<name>/meta.yaml``; a missing or malformed file is a ValueError with the reason."""
    path = root / name / "meta.yaml"
    if not path.is_file():
        raise ValueError(f"unknown template {name!r}: no {name}/meta.yaml")
    # Every render reads its meta.yaml; parsing it is most of a message's cost, reading it a fraction.
    meta: TemplateMeta = parsed_once(path, path.read_text(encoding="utf-8"), partial(_parse_meta, name))
    return meta


_parsed: dict[str, tuple[str, Any]] = {}  # path → (the text last parsed, what it gave)


def parsed_once(path: Path, text: str, parse: Callable[[str], Any]) -> Any:
    """``parse(text)``, reused while the file at ``path`` still has that text (an error is not kept).

    Keyed on the text itself, not the file time, which can stay the same across two quick edits."""
    cached = _parsed.get(str(path))
    if cached is not None and cached[0] == text:
        return cached[1]
    value = parse(text)
    _parsed[str(path)] = (text, value)
    return value


def _parse_meta(name: str, text: str) -> TemplateMeta:
    try:
        data = load_located(text).data or {}
    except YamlError as exc:
        raise MetaError(f"{name}/meta.yaml:{exc.position.line}: {exc.message}", exc.position.line) from None
    if not isinstance(data, dict):
        raise ValueError(f"{name}/meta.yaml must be a mapping")
    sms = data.get("sms") or {}
    wechat = data.get("wechat") or {}
    if not isinstance(sms, dict) or not isinstance(wechat, dict):
        raise ValueError(f"{name}/meta.yaml: 'sms' and 'wechat' must be mappings")
    max_segments = sms.get("max_segments", DEFAULT_MAX_SEGMENTS)
    if not isinstance(max_segments, int) or isinstance(max_segments, bool) or max_segments < 1:
        raise ValueError(f"{name}/meta.yaml: sms.max_segments must be a whole number ≥ 1, not {max_segments!r}")
    category = data.get("category", "service")
    if category not in ("service", "marketing"):
        raise ValueError(f"{name}/meta.yaml: category must be 'service' or 'marketing', not {category!r}")
    variables = data.get("variables") or []
    return TemplateMeta(
        name=name,
        description=str(data.get("description", "")),
        category=category,
        max_segments=max_segments,
        wechat_template_id=str(wechat.get("template_id", "") or ""),
        wechat_url=str(wechat.get("url", "") or ""),
        variables=tuple(str(v) for v in variables) if isinstance(variables, list) else (),
    )


def _date_filter(ctx: Any, value: Any, fmt: str = "long") -> str:
    """``{{ policy.expiry_date | date }}`` → 2026年12月1日 / December 1, 2026."""
    locale = _BABEL_LOCALE.get(ctx.get("locale", DEFAULT_LOCALE), "zh_CN")
    if isinstance(value, datetime):
        return str(format_datetime(value, format=fmt, locale=locale))
    if isinstance(value, date):
        return str(format_date(value, format=fmt, locale=locale))
    raise TypeError(f"date filter needs a date, not {type(value).__name__}")


def _money_filter(ctx: Any, value: Any, currency: str = "CNY") -> str:
    """``{{ claim.amount | money }}`` → ¥1,234.50."""
    locale = _BABEL_LOCALE.get(ctx.get("locale", DEFAULT_LOCALE), "zh_CN")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"money filter needs a number, not {type(value).__name__}")
    return str(format_currency(value, currency, locale=locale))


# Globals a message template may use; Jinja's defaults also offer lipsum, cycler and joiner,
# which nothing here needs and which were the reviewer's way in.
SAFE_GLOBALS = ("range", "dict", "namespace")
# The filter every ``{% for %}`` goes through (``TemplateSandbox._parse``): it charges the iterations.
LOOP_FILTER = "counted_loop"


class TemplateSandbox(ImmutableSandboxedEnvironment):
    """The one environment class for templates: immutable sandbox plus bounds on cost (``render_bounds``)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = BoundedCodeGenerator
    template_class = NestingTemplate
    concat = staticmethod(bounded_concat)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        too_deep = nesting_problem(self, source)
        if too_deep is not None:
            raise jinja2.TemplateSyntaxError(too_deep[1], too_deep[0], name, filename)
        # Every loop's iterable goes through LOOP_FILTER, so each iteration is charged, however nested.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            # Both bounded: chained powers of a large base grow the number of digits geometrically.
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is over {MAX_EXPONENT}")
            if isinstance(left, int) and left.bit_length() > MAX_EXPONENT:
                raise SecurityError(f"power of a number over {MAX_EXPONENT} bits")
            return left**right
        if operator == "%" and isinstance(left, str):
            check_percent_format(left, format_values(right))
        elif operator == "*":
            if _whole(left) and _whole(right):
                check_product(left, right)
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and _whole(times):
                    spend(context.eval_ctx, len(seq) * max(times, 0), "repetition")
        return checked(super().call_binop(context, operator, left, right), f"operator {operator!r}", context.eval_ctx)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # A date's strptime compiles a pattern from its format (~7 us a character); no message parses dates.
        return attr != "strptime" and super().is_safe_attribute(obj, attr, value)

    def checked_value(self, eval_ctx: Any, value: Any, what: str) -> Any:
        return checked(value, what, eval_ctx)

    def wrap_str_format(self, value: Any) -> Any:
        """``str.format`` and ``format_map`` as the sandbox wraps them, with each field's width bounded first."""
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        template: str = value.__self__
        is_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> Any:
            given = format_values(args[0]) if is_map and args else [*args, *kwargs.values()]
            check_brace_format(template, given)
            return sandboxed(*args, **kwargs)

        return bounded_format

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # (The odd first names are Jinja's: a template's keyword argument may be called ``self``.)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level: its iterations count too
            args = (counted(__context.eval_ctx, args[0]), *args[1:])
        what = f"{__obj.name if isinstance(__obj, Macro) else getattr(__obj, '__name__', type(__obj).__name__)}()"
        # Every call is an item, charged before it runs: a macro that calls itself twice and writes
        # nothing spends no loop, size or work, and its calls grew as 2**depth.
        spend(__context.eval_ctx, 1, what)
        if isinstance(__obj, BuiltinMethodType):  # ``ljust(n)``, ``to_bytes(n)``: a width or size argument
            check_numbers((*args, *kwargs.values()), what)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = check_str_method(owner, __obj.__name__, args, kwargs)
        # Python code reads its object and arguments (``loop.changed(big)``); a macro is handed references.
        work(__context.eval_ctx, 0 if isinstance(__obj, Macro) else sum(map(size_of, (owner, *args, *kwargs.values()))),
             what)
        # Only a call of template code (a macro, caller(), a loop's level, a block) nests deeper.
        owner = enter_nested(__context.eval_ctx, what)
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            owner.nesting -= 1
        return checked(result, what, __context.eval_ctx)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def render_bounded(template: jinja2.Template, variables: dict[str, Any]) -> str:
    """``template.render(variables)``, stopped with an error once the text passes ``MAX_OUTPUT``."""
    return collect_bounded(template.generate(variables))


def collect_bounded(chunks: Any) -> str:
    """The rendered text of ``chunks`` (a template's generator): one render, with its own cost budget."""
    parts: list[str] = []
    size = 0
    render = begin_render()
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError(f"message longer than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
    finally:
        end_render(render)
    return "".join(parts)


def jinja_environment(root: Path | None = None, *, autoescape: bool = False, auto_reload: bool = True,
                      trim_blocks: bool = True) -> TemplateSandbox:
    """A Jinja environment for message templates or call scripts: the only place one is made.

    Files load from ``root`` (without one, only ``from_string`` and ``parse`` serve). A
    missing variable is an error, block tags take their line's whitespace with them, and the
    ``date`` and ``money`` filters format per locale. ``auto_reload=False`` stops checking
    file times on every render (for a caller that clears the cache itself).
    ``trim_blocks=False`` keeps the newline after a block tag: the syntax check parses so,
    which can put an unclosed block's end-of-template error one line earlier.
    """
    env = TemplateSandbox(
        loader=jinja2.FileSystemLoader(str(root)) if root is not None else None,
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        trim_blocks=trim_blocks,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=auto_reload,
    )
    env.filters["date"] = jinja2.pass_context(_date_filter)
    env.filters["money"] = jinja2.pass_context(_money_filter)
    # Every filter a template can reach is bounded (widths, counts, sizes); the loop one is the sandbox's own.
    env.filters = {name: bounded_filter(name, func) for name, func in env.filters.items()}
    env.tests = {name: bounded_filter(name, cast(Callable[..., Any], func), "test") for name, func in env.tests.items()}
    env.filters[LOOP_FILTER] = counted_loop
    env.policies["json.dumps_function"] = bounded_json_dumps
    return _data_globals_only(env)


def _data_globals_only(env: TemplateSandbox) -> TemplateSandbox:
    env.globals = {name: env.globals[name] for name in SAFE_GLOBALS if name in env.globals}
    env.globals["range"] = safe_range
    return env


class Renderer:
    """Renders the templates under one folder. Thread-safe; Jinja caches compiled templates."""

    def __init__(self, root: Path, footer: str | None = None, *, auto_reload: bool = True,
                 configured_footer: str | None = None) -> None:
        """``footer`` replaces the opt-out line in every locale (tests); ``configured_footer`` is the delivery
        settings' ``marketing_sms_footer`` in force (None: read it from ``config/delivery.yaml``)."""
        self.root = root
        self._footer = footer
        self._configured_footer = configured_footer
        self.plain = jinja_environment(root, autoescape=False, auto_reload=auto_reload)
        self.escaped = jinja_environment(root, autoescape=True, auto_reload=auto_reload)

    def footer(self, locale: str) -> str:
        """The opt-out line for ``locale``: the configured one, except English messages (see ``EN_FOOTER``)."""
        if self._footer is not None:
            return self._footer
        if locale == "en":
            return EN_FOOTER
        return self._configured_footer if self._configured_footer is not None else marketing_footer()

    # -- public --

    def render(self, template: str, channel: str, context: TemplateContext,
               locale: str | None = None) -> RenderedMessage:
        if channel not in RENDER_CHANNELS:
            raise RenderError(template, channel, locale or context.locale,
                              f"unknown channel {channel!r}: channels are {', '.join(RENDER_CHANNELS)}")
        try:
            meta = self._load_meta(template)
        except ValueError as exc:
            raise RenderError(template, channel, locale or context.locale, str(exc)) from None
        chosen = self.pick_locale(template, channel, locale or context.locale)
        variables = context.variables(chosen)
        if channel == "sms":
            return self._sms(meta, chosen, variables)
        if channel == "email":
            return self._email(meta, chosen, variables)
        if channel == "push":
            return self._push(meta, chosen, variables)
        if channel == "webhook":
            return self._webhook(meta, chosen, variables)
        return self._wechat(meta, chosen, variables)

    def render_task_script(self, template: str, context: TemplateContext, locale: str | None = None,
                           outcomes: Iterable[str] | None = None) -> str:  # outcomes: see script_variables
        chosen = self.pick_locale(template, "task", locale or context.locale)
        return self._file(self.plain, template, "task", chosen, script_variables(context, chosen, outcomes)).strip()

    def _load_meta(self, template: str) -> TemplateMeta:
        return load_meta(self.root, template)

    def pick_locale(self, template: str, kind: str, wanted: str) -> str:
        """The wanted locale if the template has that file, else zh-CN (which must exist)."""
        wanted = resolve_locale(wanted)
        for candidate in (wanted, DEFAULT_LOCALE):
            if template_file(self.root, template, kind, candidate).is_file():
                return candidate
        raise RenderError(template, kind, wanted,
                          f"no {kind} version ({FILE_FOR[kind].format(locale=wanted)} or "
                          f"{FILE_FOR[kind].format(locale=DEFAULT_LOCALE)})")

    # -- per channel --

    def _sms(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        text = self._file(self.plain, meta.name, "sms", locale, variables).strip()
        if not text:
            raise RenderError(meta.name, "sms", locale, "renders to an empty message")
        if meta.category == "marketing":
            text = with_footer(text, self.footer(locale))
        length = sms_length(text)
        if length.segments > meta.max_segments:
            raise RenderError(meta.name, "sms", locale,
                f"SMS is {length.segments} segments ({length.encoding}, {length.units} units), "
                f"more than the template's max_segments {meta.max_segments}",
            )
        return RenderedMessage(channel="sms", template=meta.name, locale=locale, text=text, segments=length.segments)

    def _email(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        subject = " ".join(self._block(self.plain, meta.name, locale, "subject", variables, required=True).split())
        text = self._block(self.plain, meta.name, locale, "text", variables, required=True).strip()
        html = self._block(self.escaped, meta.name, locale, "html", variables, required=False).strip()
        if not subject:
            raise RenderError(meta.name, "email", locale, "the subject renders empty")
        if not html:
            # No html block: the plain text, escaped, so the e-mail still has both parts.
            paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
            html = "\n".join(f"<p>{html_lib.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
        return RenderedMessage(channel="email", template=meta.name, locale=locale, subject=subject, text=text,
                               html=html)

    def _push(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        """``push.<locale>.j2``: the first line is the notification's title, the rest its text."""
        rendered = self._file(self.plain, meta.name, "push", locale, variables).strip()
        title, _, text = rendered.partition("\n")
        if not title.strip() or not text.strip():
            raise RenderError(meta.name, "push", locale, "needs a title line and a text after it")
        return RenderedMessage(channel="push", template=meta.name, locale=locale, subject=title.strip(),
                               text=" ".join(text.split()))

    def _webhook(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        """``webhook.json.j2``: a JSON body (values through ``| tojson``); checked to parse."""
        rendered = self._file(self.plain, meta.name, "webhook", locale, variables).strip()
        try:
            body = json.loads(rendered)
        except ValueError as exc:
            raise RenderError(meta.name, "webhook", locale, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise RenderError(meta.name, "webhook", locale, "the body must be a JSON object")
        return RenderedMessage(channel="webhook", template=meta.name, locale=locale,
                               text=json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True))

    def _wechat_fields(self, name: str, locale: str) -> tuple[Path, str, Any]:
        """The WeChat field file of ``name``: its path, its text and what its YAML says."""
        path = template_file(self.root, name, "wechat", locale)
        source = path.read_text(encoding="utf-8")
        try:
            # Bounded as journey files are (no aliases, size, depth): a template file is edited by ops.
            return path, source, parsed_once(path, source, lambda text: load_located(text).data or {})
        except YamlError as exc:
            raise RenderError(name, "wechat", locale, exc.message, exc.position.line,
                              f"{name}/{path.name}") from None

    def _wechat(self, meta: TemplateMeta, locale: str, variables: dict[str, Any]) -> RenderedMessage:
        path, source, fields = self._wechat_fields(meta.name, locale)
        if not isinstance(fields, dict) or not all(isinstance(v, str | int | float) for v in fields.values()):
            raise RenderError(meta.name, "wechat", locale, f"{path.name} must map each field name to a string")
        if not meta.wechat_template_id:
            raise RenderError(meta.name, "wechat", locale, "meta.yaml has no wechat.template_id")
        data = {str(key): self._string(meta.name, "wechat", locale, str(value), variables, path, source, key).strip()
                for key, value in fields.items()}
        for key, problem in wechat_field_problems(data):  # WeChat would refuse it at send time (47003)
            raise RenderError(meta.name, "wechat", locale, f"field {key!r}: {problem}", _key_line(source, key),
                              f"{meta.name}/{path.name}")
        url = self._string(meta.name, "wechat", locale, meta.wechat_url, variables, path, source, "url").strip()
        return RenderedMessage(channel="wechat", template=meta.name, locale=locale,
                               wechat_template_id=meta.wechat_template_id, wechat_url=url, wechat_data=data)

    # -- Jinja plumbing with errors that name the file and line --

    def _file(self, env: jinja2.Environment, name: str, kind: str, locale: str, variables: dict[str, Any]) -> str:
        relative = f"{name}/{FILE_FOR[kind].format(locale=locale)}"
        try:
            return render_bounded(env.get_template(relative), variables)
        except jinja2.TemplateNotFound:
            raise RenderError(name, kind, locale, f"missing file {relative}") from None
        except Exception as exc:
            raise self._error(exc, name, kind, locale, relative) from None

    def _block(self, env: jinja2.Environment, name: str, locale: str, block: str, variables: dict[str, Any],
               required: bool) -> str:
        relative = f"{name}/{FILE_FOR['email'].format(locale=locale)}"
        try:
            tmpl = env.get_template(relative)
        except jinja2.TemplateNotFound:
            raise RenderError(name, "email", locale, f"missing file {relative}") from None
        except Exception as exc:
            raise self._error(exc, name, "email", locale, relative) from None
        render_block = tmpl.blocks.get(block)
        if render_block is None:
            if required:
                raise RenderError(name, "email", locale, f"{relative} has no {{% block {block} %}}")
            return ""
        try:
            try:
                return collect_bounded(render_block(tmpl.new_context(variables)))
            except Exception:
                # Rewrites the traceback onto template lines, as Template.render does.
                env.handle_exception()
        except Exception as exc:
            raise self._error(exc, name, "email", locale, relative) from None

    def _string(self, name: str, kind: str, locale: str, source: str, variables: dict[str, Any], path: Path,
                file_text: str, key: Any) -> str:
        if not source:
            return ""
        try:
            return render_bounded(self.plain.from_string(source), variables)
        except Exception as exc:
            line = _key_line(file_text, str(key))
            err = self._error(exc, name, kind, locale, f"{name}/{path.name}")
            raise RenderError(name, kind, locale, f"field {key!r}: {err.reason}", line,
                              f"{name}/{path.name}") from None

    def _error(self, exc: BaseException, name: str, kind: str, locale: str, relative: str) -> RenderError:
        if isinstance(exc, RenderError):
            return exc
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return RenderError(name, kind, locale, f"template syntax: {exc.message}", exc.lineno, relative)
        if isinstance(exc, jinja2.UndefinedError):
            message = f"undefined variable: {exc.message}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return RenderError(name, kind, locale, message, _template_line(exc, relative), relative)


def _template_line(exc: BaseException, relative: str) -> int | None:
    """The template line the error happened on (Jinja's rewritten traceback names the template file)."""
    line = None
    suffix = relative.replace("\\", "/")
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename.replace("\\", "/").endswith(suffix):
            line = lineno
    return line


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*['\"]?{re.escape(key)}['\"]?\s*:")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


_TRAILING = re.compile(r"[\s。.!！]+$")


def with_footer(text: str, footer: str) -> str:
    """``text`` ending with the opt-out line, added once (not again if the text already ends with it)."""
    text = text.rstrip()
    if not footer or _TRAILING.sub("", text).endswith(_TRAILING.sub("", footer)):
        return text
    separator = " " if text and text[-1].isascii() else ""
    return f"{text}{separator}{footer}"


_footer_cache: dict[str, tuple[float, str]] = {}


def marketing_footer() -> str:
    """``marketing_sms_footer`` from ``config/delivery.yaml`` (re-read when the file changes)."""
    path = delivery_config_path()
    if not path.is_file():
        return DEFAULT_FOOTER
    mtime = path.stat().st_mtime
    cached = _footer_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    config, problems = load_config(DeliveryConfig, path)
    if config is None:
        raise RuntimeError("delivery configuration is invalid: " + "; ".join(str(p) for p in problems))
    _footer_cache[str(path)] = (mtime, config.marketing_sms_footer)
    return config.marketing_sms_footer
