"""Where templates live and which exist.

Layout: ``templates/<name>/`` holds ``meta.yaml`` (description, category, SMS
segment limit, WeChat template id and field map) and one Jinja2 file per
channel and locale: ``sms.<locale>.j2``, ``email.<locale>.j2`` (blocks
``subject``, ``text``, ``html``), ``wechat.<locale>.yaml`` (the template
message's data fields, each a Jinja2 string), ``push.<locale>.j2`` (app push:
title line, then text), ``task.<locale>.j2`` (an agent's call script) and
``webhook.json.j2`` (the JSON body of a ``webhook`` step, one for all locales).
"""

from __future__ import annotations

from pathlib import Path

LOCALES: tuple[str, ...] = ("zh-CN", "en")
FILE_FOR: dict[str, str] = {
    "sms": "sms.{locale}.j2",
    "email": "email.{locale}.j2",
    "wechat": "wechat.{locale}.yaml",
    "task": "task.{locale}.j2",
    "push": "push.{locale}.j2",
    # One body for every locale: another system reads it, not the customer.
    "webhook": "webhook.json.j2",
}


def template_file(root: Path, name: str, kind: str, locale: str) -> Path:
    return root / name / FILE_FOR[kind].format(locale=locale)


def available_templates(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "meta.yaml").is_file())


def missing_files(root: Path, name: str, kinds: list[str]) -> list[str]:
    """What is missing for template ``name`` to serve ``kinds`` in every locale, as messages."""
    folder = root / name
    if not (folder / "meta.yaml").is_file():
        known = available_templates(root)
        hint = f" (known: {', '.join(known[:12])}{', …' if len(known) > 12 else ''})" if known else ""
        return [f"unknown template {name!r}: no {folder.name}/meta.yaml under {root.name}/{hint}"]
    problems = []
    for kind in kinds:
        for locale in LOCALES:
            path = template_file(root, name, kind, locale)
            if not path.is_file():
                problems.append(f"template {name!r} has no {kind} version for {locale} ({name}/{path.name})")
    return problems
