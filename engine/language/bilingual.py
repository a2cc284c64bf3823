"""Text an author writes in both languages, Chinese first: ``黄金月度专属回访 / Gold monthly callback``.

A journey's ``name`` and an exit step's ``label`` are written this way, and a page shows the half for
its reader's language; text of one part is shown as it is in both.
"""

from __future__ import annotations

import re

# Between the halves: " / ", or a slash right after Chinese text or full-width punctuation, which is
# often written with no space before it ("投诉超时升级（主管）/ Complaint escalation").
_HALVES = re.compile(r"\s+/\s+|(?<=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef])/\s*")


def halves(text: str) -> tuple[str, str] | None:
    """The Chinese and the English half of ``text``, stripped, or None when it has one part."""
    parts = _HALVES.split(text, maxsplit=1)
    if len(parts) != 2:
        return None
    return parts[0].strip(), parts[1].strip()


def localised(text: str, locale: str) -> str:
    """The half of a bilingual ``中文 / English`` text for ``locale`` (the whole text when it has one part)."""
    both = halves(text)
    if both is None:
        return text
    return both[0] if locale.startswith("zh") else both[1]
