"""Whether the delivery settings' marketing SMS footer leaves every marketing SMS within its budget.

The footer (``DeliveryConfig.marketing_sms_footer``) is added to every marketing SMS, and a template's
``max_segments`` is counted after it (``engine.language.templates``): a longer footer can push a text
that fitted over its budget, and every such message would then fail at dispatch. ``journeys validate``
reported it only at the template's line, and the delivery file landed all the same; the file's own
check (``engine.language.settings_checks.settings_file``, shared by validate and every landing) now
refuses a footer that pushes a text over, at the footer's line, naming the template. A template that
is over its budget with the shipped footer (``DeliveryConfig``'s default) is the template's problem,
reported at its own line: a footer is judged by what it adds beyond the default.

Only the SMS files of marketing templates are rendered, with the sample contexts of the template check,
each once per footer and set of files (about 0.05–0.1 s of CPU for the shipped 66 SMS files), so the
landing at every run of the service costs nothing while neither changes.
"""

from __future__ import annotations

import stat
from functools import lru_cache
from pathlib import Path

from channels.template_files import LOCALES, available_templates, template_file
from engine.language.problems import display_path
from engine.language.settings_model import DeliveryConfig
from engine.language.template_check import sample_contexts
from engine.language.templates import Renderer, RenderError, load_meta

DEFAULT_FOOTER = DeliveryConfig().marketing_sms_footer


def _tree_stat(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under ``root`` as (path, mtime, size): the cache's key. The whole tree, not the SMS files
    alone, as a template may include another file and a meta.yaml says which templates are marketing."""
    found: list[tuple[str, int, int]] = []
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        try:
            status = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(status.st_mode):
            found.append((str(path), status.st_mtime_ns, status.st_size))
    return tuple(found)


def footer_overruns(root: Path, footer: str) -> list[tuple[str, str]]:
    """(the SMS file shown as problems show files, why) for each marketing SMS that fits its
    ``max_segments`` with the default footer and not with ``footer``."""
    if footer == DEFAULT_FOOTER:
        return []
    return list(_overruns(str(root), footer, _tree_stat(root)))


@lru_cache(maxsize=8)
def _overruns(root_text: str, footer: str, _files: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, str], ...]:
    root = Path(root_text)
    with_footer = Renderer(root, footer=None, configured_footer=footer, auto_reload=False)
    shipped = Renderer(root, footer=None, configured_footer=DEFAULT_FOOTER, auto_reload=False)
    out: list[tuple[str, str]] = []
    for name in available_templates(root):
        try:
            if load_meta(root, name).category != "marketing":
                continue
        except ValueError:
            continue  # a broken meta.yaml is the template's own problem
        for locale in LOCALES:
            path = template_file(root, name, "sms", locale)
            if not path.is_file():
                continue
            for context, _given in sample_contexts("sms", locale):
                try:
                    shipped.render(name, "sms", context, locale)
                except RenderError:
                    break  # over budget, or broken, with the default footer: not this footer's doing
                try:
                    with_footer.render(name, "sms", context, locale)
                except RenderError as exc:
                    out.append((display_path(path), exc.reason))
                    break
    return tuple(out)
