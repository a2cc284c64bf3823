"""A Prefect worker's flow-run process masks what it logs, as a `journeys` command does.

Scaled out, a worker starts a process of its own for each flow run, which loads the flow by its
deployment's entrypoint (``engine/runtime/flows.py:plan_flow``); no `journeys` command runs there to
install the masking, and the run's log (Prefect's own handlers included) goes to the Prefect
server as written. Each entrypoint is loaded here as Prefect loads it, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime.deployments import DEPLOYMENTS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import logging, sys
from prefect.flows import load_flow_from_entrypoint
load_flow_from_entrypoint(sys.argv[1])
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s", force=True)
logging.getLogger("channels.sms_twilio").warning(
    "provider said: The 'To' number %s is not valid; wang.wei@example.com, %s", "+8613812345678",
    "/hooks/wechat?openid=oAbCdEfGhIjKlMnOpQrStUvWxYz1")
"""


@pytest.mark.parametrize("entrypoint", sorted({f"{d.entrypoint}:{d.flow}" for d in DEPLOYMENTS}))
def test_a_flow_run_process_masks_its_log(entrypoint: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, entrypoint], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert "138****5678" in line and "w***@example.com" in line and "o****xYz1" in line
    assert "13812345678" not in line and "wang.wei" not in line and "oAbCdEfGhIjK" not in line
