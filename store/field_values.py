"""A dataclass's fields as a dict, for reports and views whose keys are their field names.

Unlike ``dataclasses.asdict`` the values are the objects themselves, not deep copies: a
report's counters and lists are handed on (or reshaped by the caller) without being copied.
Deriving the keys from the fields means a field added later is reported without a second
list of names to keep in step.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def field_values(record: DataclassInstance, *, without: Collection[str] = ()) -> dict[str, Any]:
    """``{name: value}`` of ``record``'s fields in declaration order, less those named in ``without``."""
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name not in without}
