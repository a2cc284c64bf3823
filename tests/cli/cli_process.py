"""The installed ``journeys`` command run in a subprocess, as a shell or a scheduler runs it: what reaches
stderr and the exit code, with nothing of the test's own process (CliRunner would not show a traceback
that main() lets through, nor what logging writes)."""

from __future__ import annotations

import os
import subprocess  # nosec B404 # the test runs our own command
import sys
from dataclasses import dataclass
from pathlib import Path

JOURNEYS = Path(sys.executable).with_name("journeys")


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def run_journeys(*args: str, env: dict[str, str], cwd: Path, stdin: str = "") -> Finished:
    """``journeys ARGS`` with the environment of this process minus the product's own settings, plus ``env``."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("JOURNEYS_", "TWILIO_", "WECHAT_", "SMTP_", "PREFECT_API"))}
    done = subprocess.run([str(JOURNEYS), *args], env={**base, **env}, cwd=cwd, input=stdin,  # nosec B603
                          capture_output=True, text=True, timeout=300, check=False)
    return Finished(done.returncode, done.stdout, done.stderr)
