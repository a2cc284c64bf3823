"""Text an author writes in both languages, Chinese first: ``黄金月度专属回访 / Gold monthly callback``.

A journey's ``name``, an exit step's ``label`` and a split variant's ``label`` are written this way, and a
page shows the half for its reader's language; text of one part is shown as it is in both.
"""

from __future__ import annotations

import re

# Between the halves: " / ", or a slash right after Chinese text or full-width punctuation, which is
# often written with no space before it ("投诉超时升级（主管）/ Complaint escalation").
_HALVES = re.compile(r"\s+/\s+|(?<=[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef])/\s*")

# A label gives a code words that fit a diagram's box and a table's cell; the code stays what reports count by.
LABEL_MAX = 60


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


def checked_label(text: str, owner: str, example: str) -> str:
    """``text`` stripped, if a page can show it as the words of a code; else ValueError telling the author how
    to write it. ``owner`` names what is labelled ("an exit"), ``example`` is a label written right."""
    words = text.strip()
    if not words:
        raise ValueError(f"{owner}'s label may not be empty: write its words, e.g. {example}")
    if "\n" in words or "\r" in words:
        raise ValueError(f"{owner}'s label is one line: 中文 / English, e.g. {example}")
    if len(words) > LABEL_MAX:
        raise ValueError(f"{owner}'s label is at most {LABEL_MAX} characters, not {len(words)}")
    both = halves(words)
    if (both is not None and not all(both)) or words.startswith("/") or words.endswith("/"):
        raise ValueError(f"label {words!r} has an empty half: write 中文 / English, e.g. {example}")
    return words
