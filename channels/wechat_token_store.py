"""The WeChat access token kept in the store, so that every process of the account uses one token.

WeChat allows a limited number of token fetches a day (2,000 for an official account), and each
fetch invalidates the token fetched before it five minutes later. Its documentation therefore
asks for one place that fetches and refreshes the token and for every other server to take the
token from there. A token cached per process broke that: each dispatch flow run built its
adapter and fetched a token of its own, so two workers (or a worker and the console's test send)
invalidated each other's tokens every few minutes and spent the daily fetches.

Here the token lives in the ``kv`` row ``wechat:access_token:<appid>``. A process that finds
no usable token there takes the row's write lock (an UPDATE: a row lock on PostgreSQL, the
database's write lock on SQLite), reads the row again under it and fetches only when the row
still holds nothing usable, so processes refreshing at once wait for one fetch and take its
token. The token is encrypted with the data key when one is configured (``store.crypto``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import update
from sqlmodel import col, select

from channels.optout import insert_or_ignore
from store.crypto import DataKeyError, FieldCipher, data_key_configured
from store.db import session_scope
from store.models import KeyValue

log = logging.getLogger(__name__)

_CONTEXT = b"wechat.access_token"


def usable(expires_at: float, lifetime: float, margin_s: float, now: float) -> bool:
    """Whether a token with this much life left is still one to hand out rather than refresh."""
    return expires_at - now > min(margin_s, lifetime / 2)


class StoredTokens:
    """One official account's access token in the store's ``kv`` table (see the module doc)."""

    def __init__(self, appid: str, db_url: str | None = None, *, margin_s: float = 300.0) -> None:
        self.key = f"wechat:access_token:{appid}"
        self._db_url = db_url
        self.margin_s = margin_s

    def _cipher(self) -> FieldCipher | None:
        if not data_key_configured():
            return None
        try:
            return FieldCipher(context=_CONTEXT)
        except DataKeyError:
            return None

    def _encode(self, token: str, expires_at: float, lifetime: float) -> dict[str, Any]:
        cipher = self._cipher()
        if cipher is None:
            return {"token": token, "expires_at": expires_at, "lifetime": lifetime}
        return {"token_enc": base64.b64encode(cipher.encrypt(token)).decode("ascii"),
                "expires_at": expires_at, "lifetime": lifetime}

    def _decode(self, value: dict[str, Any] | None) -> tuple[str, float, float] | None:
        if not value or "expires_at" not in value:
            return None
        try:
            if "token_enc" in value:
                cipher = self._cipher()
                if cipher is None:
                    return None
                token = cipher.decrypt(base64.b64decode(value["token_enc"]))
            else:
                token = str(value["token"])
            return token, float(value["expires_at"]), float(value.get("lifetime", 7200))
        except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag):
            # Written under a key since rotated away, or damaged: a fresh fetch replaces it.
            return None

    def load(self) -> tuple[str, float] | None:
        """The stored token and its expiry (epoch seconds) when it is still usable, else None."""
        with session_scope(self._db_url) as session:
            row = session.exec(select(KeyValue).where(col(KeyValue.key) == self.key)).first()
            found = self._decode(row.value if row is not None else None)
        if found is None or not usable(found[1], found[2], self.margin_s, time.time()):
            return None
        return found[0], found[1]

    def refresh(self, stale: str | None, fetch: Callable[[], tuple[str, int]]) -> tuple[str, float]:
        """A usable token other than ``stale``: the stored one when another process has put one there,
        else ``fetch()``'s, stored; at most one process fetches at a time."""
        unlocked = self.load()  # without the lock first: a process starting up finds a good token nearly always
        if unlocked is not None and unlocked[0] != stale:
            return unlocked
        now_dt = datetime.now(UTC)
        with session_scope(self._db_url) as session:
            insert_or_ignore(session, KeyValue, {"key": self.key, "value": {}, "updated_at": now_dt}, "key")
            # Lock first, read after: a second process waits here and then reads the first one's token.
            session.execute(update(KeyValue).where(col(KeyValue.key) == self.key).values(updated_at=now_dt))
            value = session.execute(select(KeyValue.value).where(col(KeyValue.key) == self.key)).scalar_one()
            found = self._decode(value)
            if found is not None and found[0] != stale and usable(found[1], found[2], self.margin_s, time.time()):
                return found[0], found[1]
            token, expires_in = fetch()
            expires_at = time.time() + expires_in
            session.execute(update(KeyValue).where(col(KeyValue.key) == self.key)
                            .values(value=self._encode(token, expires_at, float(expires_in)), updated_at=now_dt))
            return token, expires_at
