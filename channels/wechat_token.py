"""The WeChat access token: cached, refreshed before it expires, and fetched once however many wait.

WeChat allows a limited number of token fetches per day, and each fetch
invalidates the previous token (after a short grace period), so concurrent
senders that find the token stale must share one fetch: the first starts it,
the rest await the same task. A send that was refused with 40001/42001 asks
for a refresh *of the token it used*; if another send has refreshed meanwhile,
it gets the new token without another fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenError(Exception):
    """The token endpoint refused (``errcode``) or could not be reached (``errcode`` None)."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class AccessTokenCache:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, int]]],
        *,
        clock: Callable[[], float] = time.monotonic,
        margin_s: float = 300.0,
    ) -> None:
        """``fetch`` returns ``(access_token, expires_in seconds)``; it is refreshed
        ``margin_s`` before expiry (at most half-way through a short lifetime)."""
        self._fetch = fetch
        self._clock = clock
        self._margin = margin_s
        self._token: str | None = None
        self._refresh_at = 0.0
        self._pending: asyncio.Task[str] | None = None
        self.fetches = 0

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        return await self.refresh(stale=self._token)

    async def refresh(self, stale: str | None) -> str:
        """A token other than ``stale``: the current one if already replaced, else one shared fetch."""
        if self._pending is None:
            current = self._fresh()
            if current is not None and current != stale:
                return current
            self._pending = asyncio.get_running_loop().create_task(self._do_fetch())
        # shield: one waiter being cancelled must not cancel the fetch the others wait on.
        return await asyncio.shield(self._pending)

    async def _do_fetch(self) -> str:
        try:
            self.fetches += 1
            token, expires_in = await self._fetch()
            self._token = token
            self._refresh_at = self._clock() + max(expires_in - self._margin, expires_in / 2)
            return token
        finally:
            self._pending = None

    def invalidate(self) -> None:
        self._refresh_at = 0.0
