"""Folding a locale as a customer's row spells it onto one the project knows."""

from __future__ import annotations

from collections.abc import Iterable


def fold_locale(locale: str | None, known: Iterable[str], default: str) -> str:
    """The ``known`` locale ``locale`` names (``zh``, ``zh_cn``, ``en-US`` folded onto ``zh-CN``/``en``),
    else ``default``.

    Rows come from other systems, so the same language arrives spelt several ways; the first known
    locale with the same language wins."""
    if not locale:
        return default
    norm = locale.replace("_", "-").lower()
    for candidate in known:
        if norm == candidate.lower() or norm.split("-")[0] == candidate.lower().split("-")[0]:
            return candidate
    return default
