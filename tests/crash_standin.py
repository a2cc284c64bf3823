"""The Twilio stand-in (``standins.twilio_api``, with the Messages list that reconciliation asks
after a crash) in its own process for the crash test.

Run as ``python -m tests.crash_standin [latency_s]``: prints the port on stdout, serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

from standins.faults import FaultPlan
from standins.twilio_api import TwilioStandin


async def main() -> None:
    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    standin = TwilioStandin(callbacks=False, faults=FaultPlan(latency_s=latency))
    port = await standin.serve()
    print(json.dumps({"port": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await standin.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
