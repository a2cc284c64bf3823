"""Prefect's local engine (its ephemeral API server) for the embedded default: started on purpose, with time to spare.

Left to itself, Prefect starts the ephemeral server the first time a flow runs and gives it
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (Prefect's default: 20 s) to answer its
health check. A fresh server migrates its own SQLite database first; on a busy machine that
takes longer, and the run dies with "Timed out while attempting to connect to ephemeral Prefect
API server". Prefect also leaves the timed-out process running, and its next attempt starts
another beside it and forgets the first, which then outlives the program.

``start_local_engine`` starts the server up front instead: with a generous timeout unless the
user has set one (environment or Prefect profile), measured on the wall clock, a second attempt
after the first process is stopped, and an error naming the setting when both fail. The server
is Prefect's own (``SubprocessASGIServer``, registered where every Prefect client looks for it),
so the flows run against it as before. ``stop_local_engine`` stops it; Prefect also stops it at
exit.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

STARTUP_TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# Generous on purpose: on an idle machine a fresh server answers in 5-15 s, but two CPU-bound
# processes beside it on two cores have been seen to need over 120 s. The wait ends as soon as the
# server answers or its process exits, so a large bound costs nothing when all is well.
DEFAULT_STARTUP_TIMEOUT = 300
ATTEMPTS = 2
# uvicorn's exit code when it could not start: a port already taken (Prefect's own start then moves
# to another port, again and again), or the app's start-up failing (a broken Prefect database).
_STARTUP_FAILED = 3

Waiting = Callable[[float], None]


class LocalEngineError(RuntimeError):
    """Prefect's local engine could not be started; the message says which setting to change."""


class StartCancelled(LocalEngineError):
    """The caller gave up waiting (``cancel`` was set); the half-started server has been stopped."""


def startup_timeout() -> float:
    """The user's ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` if they set one, else ours."""
    from prefect.settings import get_current_settings

    ephemeral = get_current_settings().server.ephemeral
    # Set in the environment or a Prefect profile: the user's choice stands, large or small.
    if "startup_timeout_seconds" in ephemeral.model_fields_set:
        return float(ephemeral.startup_timeout_seconds)
    return float(DEFAULT_STARTUP_TIMEOUT)


def uses_local_engine() -> bool:
    """True unless ``PREFECT_API_URL`` points at a Prefect server (scaled out: nothing to start)."""
    from prefect.settings import get_current_settings

    return not get_current_settings().api.url


def start_local_engine(timeout: float | None = None, waiting: Waiting | None = None, every: float = 5.0,
                       cancel: threading.Event | None = None) -> str | None:
    """Start Prefect's ephemeral API server now (once per process); returns its API URL.

    Returns None when ``PREFECT_API_URL`` names a server to use instead. ``waiting`` is called
    with the seconds waited so far, every ``every`` seconds, while the server is not yet up.
    Raises ``LocalEngineError`` after ``ATTEMPTS`` failed starts, each first stopped, and
    ``StartCancelled`` as soon as ``cancel`` is set.
    """
    if not uses_local_engine():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    limit = startup_timeout() if timeout is None else timeout
    failures: list[str] = []
    for _attempt in range(ATTEMPTS):
        server = SubprocessASGIServer()  # the instance every Prefect client in this process uses
        if server.running:
            return str(server.api_url)
        try:
            failure = _start(server, limit, waiting, every, cancel)
        except BaseException:
            server.stop()  # interrupted (Ctrl-C): no half-started server left behind
            raise
        if failure is None:
            return str(server.api_url)
        failures.append(failure)
        # Stopped before the next attempt, so a slow first process is not left running beside it.
        server.stop()
    raise LocalEngineError(
        f"Prefect's local engine did not start ({'; then '.join(failures)}). A busy machine needs more time: "
        f"set {STARTUP_TIMEOUT_SETTING} to more seconds than {limit:g} (e.g. "
        f"{STARTUP_TIMEOUT_SETTING}={int(max(limit * 2, DEFAULT_STARTUP_TIMEOUT))}), or set PREFECT_API_URL to a "
        "running Prefect server."
    )


def _start(server: Any, limit: float, waiting: Waiting | None, every: float,
           cancel: threading.Event | None) -> str | None:
    """One attempt: None when the server answers its health check within ``limit`` seconds, else why not."""
    launch = getattr(server, "_run_uvicorn_command", None)
    if launch is None:  # a Prefect without the method this relies on (pinned to 3.8): its own start
        try:
            server.start(timeout=max(1, int(limit)))
        except RuntimeError as exc:
            return str(exc).split(" stdout:")[0]
        return None
    import httpx

    if server.port is None:
        server.port = server.find_available_port()
    server.running = True
    server.server_process = _launched(launch)
    atexit.register(server.stop)  # as Prefect's own start does: stopped at exit whatever happens
    started = time.monotonic()
    told = 0
    relaunched = False
    with httpx.Client() as client:
        while True:
            code = server.server_process.poll()
            if code == _STARTUP_FAILED and not relaunched:
                # Most likely the port was taken between choosing and binding it: once more on another.
                relaunched = True
                server.port = server.find_available_port()
                server.server_process = _launched(launch)
                continue
            if code is not None:
                return f"its process exited with code {code} while starting (its output is above)"
            try:
                if client.get(f"{server.api_url}/health", timeout=10).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass  # not listening yet, or too busy to answer in time
            if cancel is not None and cancel.is_set():
                raise StartCancelled("Prefect's local engine: start cancelled")
            waited = time.monotonic() - started
            if waited >= limit:
                return f"no answer within {limit:g} s"
            if waiting is not None and waited >= (told + 1) * every:
                told = int(waited // every)
                waiting(waited)
            time.sleep(0.2)


def _launched(launch: Callable[[], Any]) -> Any:
    """The server process ``launch`` starts, with a guard that stops it if this program is killed
    outright (``engine.runtime.orphan_guard``), stopped in turn by ``stop_local_engine`` or at exit."""
    from engine.runtime.orphan_guard import guard

    process = launch()
    watcher = guard(process.pid)
    _guards.append(watcher)
    return process


_guards: list[Any] = []


def _stop_guards() -> None:
    while _guards:
        watcher = _guards.pop()
        if watcher.poll() is None:
            watcher.terminate()
        watcher.wait()


# Once, at import: a server started later registers its own stop after this, so at exit it stops first.
atexit.register(_stop_guards)


def stop_local_engine() -> None:
    """Stop this process's ephemeral Prefect server, if it started one (what the flows logged is sent first)."""
    import sys

    if "prefect.server.api.server" not in sys.modules:
        return  # nothing of Prefect's server was ever imported, so none was started
    from prefect.server.api.server import SubprocessASGIServer

    servers = list(SubprocessASGIServer._instances.values())
    if not any(s.server_process is not None for s in servers):
        return
    _drain()
    for server in servers:
        server.stop()
    _stop_guards()


def _drain() -> None:
    """Send the log and event records still queued, so the server is not stopped under them."""
    import contextlib
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # the log worker never started
            logs = APILogWorker.instance().drain()
            if inspect.isawaitable(logs):
                await logs
        events = EventsWorker.drain_all()
        if inspect.isawaitable(events):
            await events

    # Best effort: the server is stopped next either way.
    with contextlib.suppress(Exception):
        run_coro_as_sync(drain())
