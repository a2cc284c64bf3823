"""The whole check, as CI and the README run it: ruff, mypy, bandit, the import contract, then the tests.

``python -m tests [pytest args...]``; exits non-zero if any part fails. The tests run in one pytest
worker per core (at most four), a test file's tests together in one worker: in one process the suite
kept one core of CI's two busy and took 79 of CI's 90 minutes, installs included. ``-n 0`` runs them
in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BANDIT_ARGS = ["-c", "pyproject.toml", "-q", "-r", "engine", "channels", "store", "console", "standins"]
# bandit, less one false alarm: it logs "nosec encountered (BXXX), but no failed test" for every
# other call on a line marked `# nosec BXXX` (PyCQA/bandit#1041, open), which buries the findings.
BANDIT = """
import logging, sys
from bandit.cli.main import main
logging.getLogger("bandit.core.tester").addFilter(lambda record: "but no failed test" not in record.getMessage())
sys.argv[0] = "bandit"
main()
"""


def run(label: str, cmd: list[str], shown: str | None = None) -> int:
    shown = shown or " ".join(cmd[2:] if cmd[:2] == [sys.executable, "-m"] else cmd)
    print(f"==> {label}: {shown}", flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def workers() -> int:
    """One per core this process may use, at most four: more would only queue on the same cores and
    stretch the tests that start servers and wait for them."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # not on macOS
    return min(4, usable or 1)


def pytest_args(argv: list[str]) -> list[str]:
    """``argv`` with the worker count unless it names its own (``-n``, ``--numprocesses``, or
    ``-p no:xdist``); ``--dist loadfile`` keeps a file's module-scoped servers to one worker."""
    chosen = any(a in ("-n", "--numprocesses", "no:xdist") or a.startswith(("-n=", "--numprocesses="))
                 or (a.startswith("-n") and a[2:].isdigit()) for a in argv)
    if chosen or workers() < 2:
        return argv
    return ["-n", str(workers()), "--dist", "loadfile", *argv]


def main(argv: list[str]) -> int:
    failures = []
    if run("ruff", [sys.executable, "-m", "ruff", "check", "."]) != 0:
        failures.append("ruff")
    if run("mypy", [sys.executable, "-m", "mypy"]) != 0:
        failures.append("mypy")
    # Security lint of the product code, configured in pyproject.toml's [tool.bandit].
    if run("bandit", [sys.executable, "-c", BANDIT, *BANDIT_ARGS], f"bandit {' '.join(BANDIT_ARGS)}") != 0:
        failures.append("bandit")
    # The layering of pyproject.toml's [tool.importlinter]: a lower layer importing a higher one,
    # an import cycle, or the console reaching for the CLI fails the check.
    if run("import-linter", [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]) != 0:
        failures.append("import-linter")
    if run("pytest", [sys.executable, "-m", "pytest", *pytest_args(argv)]) != 0:
        failures.append("pytest")
    if failures:
        print(f"FAILED: {', '.join(failures)}", flush=True)
        return 1
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
