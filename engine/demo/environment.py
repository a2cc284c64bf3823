"""Where a demo run lives and what it logs: its out directory, Prefect's settings and the masked log file."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from store.masking import MaskingFilter, install_masking_filter

DEFAULT_OUT = Path("var") / "demo"
DB_NAME = "demo.db"
LOG_NAME = "demo.log"
PREFECT_DIR = ".prefect"
SECRET_NAME = "unsubscribe-secret"  # nosec B105 # a file name: under the out directory (git ignores it)


def fresh_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir``; remove only what an earlier demo run left there (its database, log, Prefect home)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOG_NAME, "summary.json"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / PREFECT_DIR, ignore_errors=True)
    return out_dir / DB_NAME


def quiet_prefect(out_dir: Path) -> None:
    """Prefect reads these when it is first imported: set them before anything imports it."""
    os.environ["PREFECT_HOME"] = str((out_dir / PREFECT_DIR).resolve())
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # The embedded default: Prefect's ephemeral local API, never a server configured for scale-out.
    # Its start-up timeout is left to engine.runtime.local_engine (generous unless the user set one).
    os.environ.pop("PREFECT_API_URL", None)


def demo_secret_key(out_dir: Path) -> None:
    """Give the demo a key for its unsubscribe links unless one is configured (``JOURNEYS_SECRET_KEY``).

    Without one, every e-mail whose template carries an unsubscribe link fails to render, so the demo
    would show failures that a configured production never has. The key is made once, readable by the
    owner only, and kept in the out directory so links of an earlier run still open.
    """
    from channels.optout import SECRET_ENV

    if os.environ.get(SECRET_ENV):
        return
    path = out_dir / SECRET_NAME
    key = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    if not key:
        key = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(key, encoding="utf-8")
    os.environ[SECRET_ENV] = key


@contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """INFO and above of the product's loggers into ``path``, masked; the terminal keeps its level."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    previous = root.level
    # The terminal's handlers keep showing what they showed before (WARNING by default).
    for existing in root.handlers:
        if existing.level == logging.NOTSET:
            existing.setLevel(previous)
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO))
    # aiohttp and httpx would log every request at INFO: nothing to learn from them here. The SMTP
    # stand-in's library (aiosmtpd, logger "mail.log") warns about its own deprecations on every login.
    for noisy in ("httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def mask_prefect_handlers() -> None:
    """Prefect installs its own handlers (not the root's): put the masking filter on them too."""
    for name in list(logging.root.manager.loggerDict):
        if name == "prefect" or name.startswith("prefect."):
            logger = logging.getLogger(name)
            if logger.handlers:
                install_masking_filter(logger)
