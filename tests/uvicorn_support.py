"""An ASGI app under real uvicorn on a loopback port, in a thread of the test's process.

Tests that need what reaches the wire (webhooks pushed by a stand-in, request limits, a burst of
concurrent requests) serve the app this one way, so startup failures and shutdown look alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn


@contextmanager
def uvicorn_thread(app: Any, *, start_within: float = 30.0, stop_within: float = 10.0,
                   **options: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn ``options`` on an ephemeral port; yields the port it bound."""
    options.setdefault("lifespan", "off")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_within
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=stop_within)
