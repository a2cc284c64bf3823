"""No log record of any logger carries an unmasked phone, e-mail or ID number (SPEC §9),
including loggers with their own handlers and formatters, like uvicorn's access log."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from store.masking import install_masking_everywhere

PHONE, EMAIL, ID_NUMBER = "+8613812345678", "wang.xiaoming@example.com", "110101199003074518"


@pytest.fixture
def isolated_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    previous = logging.getLogRecordFactory()
    install_masking_everywhere()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.own-handler")
    logger.propagate = False  # like uvicorn.access: the root's filters never see these records
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(previous)


def test_uvicorn_access_lines_are_masked(isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = isolated_logger
    logger.handlers[0].setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s',
                                                    use_colors=False))
    path = f"/api/customers/{PHONE}?email={EMAIL}&id={ID_NUMBER}"
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    line = stream.getvalue()
    assert "GET /api/customers/" in line and " 200" in line
    assert PHONE not in line and "13812345678" not in line and EMAIL not in line and ID_NUMBER not in line
    assert "138****5678" in line


def test_messages_arguments_and_tracebacks_are_masked(isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = isolated_logger
    logger.info(f"sent to {PHONE}")
    logger.info("customer %s, %s, %r", EMAIL, {"id": ID_NUMBER}, 42)
    try:
        raise ValueError(f"bad number {PHONE}")
    except ValueError:
        logger.exception("failed for %s", EMAIL)
    text = stream.getvalue()
    assert PHONE not in text and "13812345678" not in text and EMAIL not in text and ID_NUMBER not in text
    assert "42" in text and "ValueError: bad number" in text


def test_installing_twice_masks_once() -> None:
    previous = logging.getLogRecordFactory()
    try:
        install_masking_everywhere()
        first = logging.getLogRecordFactory()
        install_masking_everywhere()
        assert logging.getLogRecordFactory() is first
    finally:
        logging.setLogRecordFactory(previous)
