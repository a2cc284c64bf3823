"""A Twilio stand-in in its own process for the crash test, with Twilio's Messages *list*
(``GET …/Messages.json?To=…``) that reconciliation asks after a crash.

Run as ``python -m tests.crash_standin``: prints the port on stdout, serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiohttp import web

from standins.faults import FaultPlan
from standins.twilio_api import API_VERSION, TwilioStandin


class ListingTwilioStandin(TwilioStandin):
    def routes(self) -> list[web.RouteDef]:
        listing = web.get(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self.list_messages)
        return [*super().routes(), listing]

    async def list_messages(self, request: web.Request) -> web.Response:
        to = request.query.get("To")
        rows: list[dict[str, Any]] = [
            {"sid": e.message_id, "to": e.recipient, "status": "queued", "body": e.detail.get("body"),
             "account_sid": self.account_sid}
            for e in self.log.entries
            if to is None or e.recipient == to
        ]
        uri = request.path_qs
        page = {"messages": rows, "page": 0, "page_size": max(50, len(rows)), "start": 0, "end": max(0, len(rows) - 1),
                "first_page_uri": uri, "next_page_uri": None, "previous_page_uri": None, "uri": uri}
        return web.json_response(page)


async def main() -> None:
    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    standin = ListingTwilioStandin(callbacks=False, faults=FaultPlan(latency_s=latency))
    port = await standin.serve()
    print(json.dumps({"port": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await standin.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
