"""In English a journey's name inside a sentence is quoted: "Too late to send: 2 days after its due time; journey
Birthday care allows at most 12 hours" read as if "care allows" were the verb. The Chinese pages already mark
names with 「」. Every English message that puts a journey (or a step) name in running text quotes it; a name in
brackets or after a colon stands apart already."""

from __future__ import annotations

import re

from console.i18n import Translator, catalog_messages

NAME = re.compile(r"%\((journey|step)\)s")
APART = re.compile(r"[“(]%\((?:journey|step)\)s[”)]|: %\((?:journey|step)\)s")


def test_every_english_message_quotes_the_names_it_runs_into_its_sentence() -> None:
    english = catalog_messages("en")
    with_names = {k: v for k, v in english.items() if NAME.search(v)}
    assert len(with_names) >= 8
    unquoted = {v for v in with_names.values() if len(NAME.findall(v)) != len(APART.findall(v))}
    assert not unquoted, unquoted
    # The Chinese messages keep their own marks.
    chinese = catalog_messages("zh-CN")
    assert all("「%(journey)s」" in chinese[k] for k, v in with_names.items() if "“%(journey)s”" in v)


def test_a_reason_reads_with_the_name_quoted() -> None:
    en = Translator("en")
    assert en("Journey %(journey)s was switched off before this touch was due", journey="Birthday care") == (
        "Journey “Birthday care” was switched off before this touch was due")
