"""A server process of ours stopped when the program that started it dies, even by SIGKILL.

Prefect's local engine is a uvicorn process (``engine.runtime.local_engine``). A program that ends
normally, by an error or by Ctrl-C stops it (``stop_local_engine``, and Prefect's own ``atexit``), but
a program killed outright (``kill -9``, the kernel's out-of-memory killer, a container stopped
without a grace period) runs no code at all, and the server used to outlive it: a process holding a
port and its SQLite database, found by whoever came next. Nothing in Prefect's ``Popen`` asks the
kernel to end the child with its parent, so a small guard process watches instead: it is the
starting program's child, so when that program dies it is handed to another parent, and on seeing
that it stops the server (SIGTERM, then SIGKILL after ``GRACE`` seconds) and exits. It also exits
as soon as the server is gone (stopped the normal way). It imports nothing of the product.

Run as ``python -m engine.runtime.orphan_guard PARENT_PID SERVER_PID``; ``guard`` starts it.
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404 # starts this module itself with the running interpreter
import sys
import time
from pathlib import Path

# How often the guard looks (a cheap system call each time), and how long the server has to stop.
EVERY = 0.5
GRACE = 5.0


def guard(server_pid: int) -> subprocess.Popen[bytes]:
    """Start a guard that stops ``server_pid`` when this process dies; stop it with ``terminate()``."""
    return subprocess.Popen(  # nosec B603 # our own module, our own interpreter, numbers as arguments
        [sys.executable, "-m", "engine.runtime.orphan_guard", str(os.getpid()), str(server_pid), _started(server_pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True,
        # Not in the terminal's process group: a Ctrl-C meant for the program must not end the guard
        # before the program has stopped its server the orderly way.
        start_new_session=True,
    )


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (Linux); [] where the system does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.rsplit(")", 1)[1].split()


def _started(pid: int) -> str:
    """When ``pid`` started, in the kernel's clock ticks, so that a process id reused after the server
    ended is never mistaken for it; "" where the system does not say."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the id now another user's process
        return False
    if not started:
        return True
    fields = _stat(pid)
    # A zombie has ended: only its parent has not read its status yet.
    return len(fields) > 19 and fields[19] == started and fields[0] != "Z"


def watch(parent: int, server: int, started: str) -> None:
    """Until ``server`` is gone: when ``parent`` is no longer this process's parent, stop ``server``."""
    while _alive(server, started):
        if os.getppid() != parent:
            os.kill(server, signal.SIGTERM)
            deadline = time.monotonic() + GRACE
            while _alive(server, started) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(server, started):
                os.kill(server, signal.SIGKILL)
            return
        time.sleep(EVERY)


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
