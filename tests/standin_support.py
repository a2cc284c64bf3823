"""Helpers for the tests that run a provider stand-in on loopback for one test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from standins.base import Standin

S = TypeVar("S", bound=Standin)


def serving(standin: S) -> Iterator[S]:
    """For a fixture: the stand-in runs until the test is over. It yields the object it was given, so
    the fixture keeps the stand-in's own type (``Standin.__enter__`` is typed as the base class)."""
    with standin:
        yield standin
