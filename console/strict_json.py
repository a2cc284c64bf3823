"""The route class of every ``/api`` router: JSON bodies are read by ``store.standard_json``.

A body holding ``NaN``/``Infinity`` or half a surrogate pair is refused as malformed JSON
(FastAPI's 422 ``json_invalid``, the reason in its message) before any handler runs, so nothing
of it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from store.standard_json import strict_loads


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
