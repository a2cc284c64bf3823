"""The customer ids README.md's commands use are ids the book ``journeys seed`` makes has, so that a
reader who follows it gets a preview, not 'no customer with external id'."""

from __future__ import annotations

import re
from pathlib import Path

from engine.demo.book import CUSTOMER_PREFIX

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
COMMANDS = "\n".join(re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL))


def test_the_readme_previews_a_seeded_customer() -> None:
    ids = re.findall(r"--customer\s+(\S+)", COMMANDS)
    assert ids, "README.md shows no command with --customer"
    for customer in ids:
        assert re.fullmatch(re.escape(CUSTOMER_PREFIX) + r"\d{9}", customer), customer
