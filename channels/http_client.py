"""What the HTTP adapters share about their ``httpx`` client (on the aiohttp transport, NOTES.md).

- ``NoCookies``: the providers' APIs set no cookies, yet httpx wraps every request and response
  in urllib objects for its cookie jar (about a tenth of a send, profiled); this jar does nothing.
- ``unanswered``: what a request that got no answer means for the message it carried
  (``channels.errors``). ``httpx-aiohttp`` reports every aiohttp connection error as an httpx
  timeout; the aiohttp cause tells "never connected" (the provider never saw it: retryable) from
  "sent, reply lost" (it may have taken the message: unknown).
"""

from __future__ import annotations

import aiohttp
import httpx

from channels.base import ErrorClass
from channels.errors import CONNECT_ERROR, CONNECTION_LOST, TIMEOUT


class NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


def unanswered(exc: httpx.HTTPError | TimeoutError, provider: str) -> tuple[ErrorClass, str, str]:
    """(error class, error code, reason) for a request to ``provider`` that raised ``exc``."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return "retryable", CONNECT_ERROR, f"cannot connect to {provider}"
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, aiohttp.ServerTimeoutError):
            return "unknown", CONNECTION_LOST, f"connection lost: {type(cause).__name__}"
        return "unknown", TIMEOUT, f"no reply from {provider} within the timeout"
    if isinstance(exc, httpx.ConnectError):
        return "retryable", CONNECT_ERROR, f"cannot connect to {provider}"
    return "unknown", CONNECTION_LOST, f"connection lost: {type(exc).__name__}"
