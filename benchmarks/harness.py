"""The benchmarks' common tail: a size argument, aligned figure lines and one ``BENCH {...}`` JSON line.

Also what several scripts set up alike: ``--db`` with :func:`bench_database` (the empty database a
script builds its book in) and :func:`p95` for request timings.

Each script keeps measuring what it measured; at the end it fills a :class:`Report` and calls
:meth:`Report.finish`, which prints

    figure                                  value  unit      bar          verdict
    whole dispatch path                     4,210  sends/s   >= 2,000     met
    ...
    BENCH {"bench": "dispatch", "size": 20000, "figures": {...}, "bars": {...}, "met": true, ...}

The JSON line is the machine-readable part (``run_all.py`` and the smoke test read it); it is
always the last line a script prints, so ``stdout.splitlines()[-1]`` finds it.

Import it as ``from benchmarks.harness import ...`` after putting the repository root on
``sys.path`` (the scripts run as ``python benchmarks/<name>.py``, and ``benchmarks`` is not an
installed package).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "BENCH "


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every script shares (the size option itself stays on each script: its meaning differs)."""
    parser.add_argument(
        "--no-fail", action="store_true",
        help="exit 0 even when a bar is missed (smoke runs at tiny sizes, where bars mean nothing)",
    )


def add_database_option(parser: argparse.ArgumentParser) -> None:
    """``--db``: the empty database a script builds its book in (what :func:`bench_database` opens)."""
    parser.add_argument("--db", help="an empty database URL (default: a temporary SQLite file)")


@contextmanager
def bench_database(url: str | None) -> Iterator[str]:
    """The database to build in: ``url`` or a temporary SQLite file, set as ``JOURNEYS_DATABASE_URL``.

    The store's pooled engine for it is disposed on the way out, before the temporary file goes
    (SQLite on some systems refuses to delete a file that is still open).
    """
    with tempfile.TemporaryDirectory() as tmp:
        target = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        os.environ["JOURNEYS_DATABASE_URL"] = target
        try:
            yield target
        finally:
            from store.db import get_engine

            get_engine(target).dispose()


async def console_client(app: Any, username: str, password: str) -> Any:
    """An httpx client logged in to the console ``app`` (in process, over ASGI) as ``username``."""
    import re

    import httpx

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = await client.post("/login", data={"username": username, "password": password,
                                                 "csrf_token": token.group(1)})
    assert response.status_code == 303, response.status_code
    return client


def p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile of ``values`` (at least one)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


@dataclass
class Figure:
    key: str
    label: str
    value: float
    unit: str = ""
    bar: str | None = None  # human-readable, e.g. ">= 2,000/s"
    met: bool | None = None  # None: this figure has no bar of its own
    digits: int = 1


@dataclass
class Report:
    bench: str
    size: int
    size_unit: str
    figures: list[Figure] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, label: str, value: float, unit: str = "", *, bar: str | None = None,
            met: bool | None = None, digits: int = 1) -> None:
        self.figures.append(Figure(key, label, float(value), unit, bar, met, digits))

    @property
    def met(self) -> bool | None:
        verdicts = [f.met for f in self.figures if f.met is not None]
        return all(verdicts) if verdicts else None

    def lines(self) -> list[str]:
        values = [_fmt(f.value, f.digits) for f in self.figures]
        width_label = max([len("figure"), *(len(f.label) for f in self.figures)])
        width_value = max([len("value"), *(len(v) for v in values)])
        width_unit = max([len("unit"), *(len(f.unit) for f in self.figures)])
        width_bar = max([len("bar"), *(len(f.bar or "") for f in self.figures)])
        out = [f"{'figure':<{width_label}}  {'value':>{width_value}}  {'unit':<{width_unit}}  "
               f"{'bar':<{width_bar}}  verdict"]
        for f, v in zip(self.figures, values, strict=True):
            verdict = "" if f.met is None else ("met" if f.met else "MISSED")
            out.append(f"{f.label:<{width_label}}  {v:>{width_value}}  {f.unit:<{width_unit}}  "
                       f"{f.bar or '':<{width_bar}}  {verdict}".rstrip())
        return out

    def payload(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "size": self.size,
            "size_unit": self.size_unit,
            "figures": {f.key: _json_number(f.value) for f in self.figures},
            "units": {f.key: f.unit for f in self.figures},
            "bars": {f.key: f.bar for f in self.figures if f.bar is not None},
            "verdicts": {f.key: f.met for f in self.figures if f.met is not None},
            "met": self.met,
            "load_avg_1m": _load_average(),
            "cpus": os.cpu_count(),
            "meta": self.meta,
        }

    def finish(self, args: argparse.Namespace | None = None) -> int:
        """Print the table and the BENCH line; the exit status: 1 when a bar is missed (unless --no-fail)."""
        print()
        for line in self.lines():
            print(line)
        print(PREFIX + json.dumps(self.payload(), ensure_ascii=False, sort_keys=True), flush=True)
        no_fail = bool(getattr(args, "no_fail", False))
        return 1 if self.met is False and not no_fail else 0


def parse_bench_line(stdout: str) -> dict[str, Any]:
    """The payload of the last ``BENCH`` line in a script's output."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PREFIX):
            payload: dict[str, Any] = json.loads(line[len(PREFIX):])
            return payload
    raise ValueError("no BENCH line in the output")


def _fmt(value: float, digits: int) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:,.{digits}f}"


def _json_number(value: float) -> float | None:
    # JSON has no NaN/Infinity; a figure that could not be measured is null.
    return None if math.isnan(value) or math.isinf(value) else round(value, 4)


def _load_average() -> float | None:
    # The machines are shared: every figure carries the load it was measured under.
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
