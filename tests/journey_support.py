"""The head every test journey carries (id, name, category, entry), written in one place.

A test that builds its journey from step fragments (``plan_support.vip_branch`` and the like)
then spells out only the steps it is about; journeys whose head matters to the test stay
written out in full.
"""

from __future__ import annotations


def journey(journey_id: str, name: str, entry: str, steps: str, *, category: str = "service",
            reentry: bool | None = None) -> str:
    """A journey's YAML: its head, then ``steps`` (YAML at step level, each item indented two spaces).
    ``entry`` is YAML flow; ``reentry`` left out keeps the language's default."""
    reentry_line = "" if reentry is None else f"reentry: {{allowed: {str(reentry).lower()}}}\n"
    return f"id: {journey_id}\nname: {name}\ncategory: {category}\nentry: {entry}\n{reentry_line}steps:\n{steps}"
