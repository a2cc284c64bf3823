"""The WeChat access token: cached, refreshed before it expires, and fetched once however many wait.

WeChat allows a limited number of token fetches per day, and each fetch
invalidates the previous token (after a short grace period), so concurrent
senders that find the token stale must share one fetch: the first starts it,
the rest await the same task. A send that was refused with 40001/42001 asks
for a refresh *of the token it used*; if another send has refreshed meanwhile,
it gets the new token without another fetch.

With ``shared`` (``channels.wechat_token_store.StoredTokens``) the token is also shared by
every process through the store: a process takes the stored token when there is a usable one
and fetches (one process at a time) only when there is none or it is the stale one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class SharedTokens(Protocol):
    """Where the processes of one account keep its token (blocking calls, run in a thread)."""

    def refresh(self, stale: str | None, fetch: Callable[[], tuple[str, int]]) -> tuple[str, float]: ...


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
        shared: SharedTokens | None = None,
    ) -> None:
        """``fetch`` returns ``(access_token, expires_in seconds)``; it is refreshed
        ``margin_s`` before expiry (at most half-way through a short lifetime)."""
        self._fetch = fetch
        self._clock = clock
        self._margin = margin_s
        self._token: str | None = None
        self._refresh_at = 0.0
        self._pending: asyncio.Task[str] | None = None
        self._shared = shared
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
            self._pending = asyncio.get_running_loop().create_task(self._do_fetch(stale))
        # shield: one waiter being cancelled must not cancel the fetch the others wait on.
        return await asyncio.shield(self._pending)

    async def _do_fetch(self, stale: str | None) -> str:
        try:
            if self._shared is not None:
                try:
                    token, expires_at = await self._shared_refresh(self._shared, stale)
                except SQLAlchemyError as exc:
                    # A store that cannot be read must not stop the sends: this process fetches
                    # for itself (and may invalidate the others' token) until it can be read again.
                    log.warning("WeChat access token store unavailable, fetching for this process only: %s",
                                type(exc).__name__)
                else:
                    lifetime = expires_at - time.time()
                    self._token = token
                    self._refresh_at = self._clock() + max(lifetime - self._margin, lifetime / 2)
                    return token
            self.fetches += 1
            token, expires_in = await self._fetch()
            self._token = token
            self._refresh_at = self._clock() + max(expires_in - self._margin, expires_in / 2)
            return token
        finally:
            self._pending = None

    async def _shared_refresh(self, shared: SharedTokens, stale: str | None) -> tuple[str, float]:
        loop = asyncio.get_running_loop()

        async def fetch_on_loop() -> tuple[str, int]:
            return await self._fetch()

        def fetch() -> tuple[str, int]:
            # Called by the store in its thread, holding the row's lock; the fetch itself runs on our loop.
            self.fetches += 1
            return asyncio.run_coroutine_threadsafe(fetch_on_loop(), loop).result()

        return await asyncio.to_thread(shared.refresh, stale, fetch)

    def invalidate(self) -> None:
        self._refresh_at = 0.0
