"""Log injection: whatever a provider or a request puts in a value, each log record is one line of
bounded length with no control character (newline, CR, NUL, ESC, Unicode separators), however it is
logged (as an argument, inside the message, inside an object), through the record factory the console
and CLI install and through the root filter alike. And the Twilio webhooks refuse a ``MessageSid`` that
is not a provider id before it is used at all.
"""

from __future__ import annotations

import io
import logging
import urllib.parse

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from engine.loop.receipts import handle_twilio_inbound, handle_twilio_status
from store.masking import MAX_LOG_MESSAGE, MaskingFilter, log_safe
from tests.loop.test_receipts import make_customer, make_touch, outcomes, touch_row
from tests.store import test_log_masking

FORGED = "SMx\nFAKE LOG LINE 2026-12-03 ERROR admin password reset"
HOSTILE = [FORGED, "SM" + "x" * 20_000, "SM\x00nul", "a\r\nb", "\x1b[2J\x1b[31mred", "line\u2028sep", "\u202eevil",
           "\x85next", "13812345678\n+8613912345678"]
# A line may hold the message (cut at MAX_LOG_MESSAGE), the level and logger names and the count of characters left out.
LINE_BOUND = MAX_LOG_MESSAGE + 200
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
                            *range(0x2066, 0x206A)]}

values = st.one_of(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80), st.sampled_from(HOSTILE))


# A logger with its own handler, masking installed for the test (test_log_masking's fixture).
isolated_logger = test_log_masking.isolated_logger


@pytest.fixture
def logged(isolated_logger: tuple[logging.Logger, io.StringIO]) -> tuple[logging.Logger, io.StringIO]:
    """A logger with a handler of its own (like uvicorn's), records made by the masking factory."""
    logger, stream = isolated_logger
    ours = next(h for h in logger.handlers if isinstance(h, logging.StreamHandler) and h.stream is stream)
    ours.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    return logger, stream


def _lines(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    assert text.endswith("\n")
    return text[:-1].split("\n")


def _one_safe_line(lines: list[str], start: str) -> None:
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(start), line[:200]
    assert len(line) <= LINE_BOUND
    assert not CONTROL & set(line), [c for c in line if c in CONTROL]
    assert "13812345678" not in line and "13912345678" not in line


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, how=st.sampled_from(["arg", "message", "object", "mapping"]))
@example(value=FORGED, how="arg")
@example(value="SM" + "x" * 20_000, how="message")
def test_every_record_is_one_bounded_line_without_controls(logged: tuple[logging.Logger, io.StringIO], value: str,
                                                           how: str) -> None:
    logger, stream = logged
    if how == "arg":
        logger.warning("Twilio receipt for unknown message %s (%s)", value, "failed")
    elif how == "message":
        logger.warning(f"Twilio receipt for unknown message {value} (failed)")
    elif how == "object":
        logger.warning("Twilio receipt for unknown message %s (failed)", ValueError(value))
    else:
        logger.warning("Twilio receipt for unknown message %(sid)s (failed)", {"sid": value})
    _one_safe_line(_lines(stream), "WARNING test.own-handler: Twilio receipt for unknown message ")


def test_long_values_are_cut_and_say_so(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    logger.warning("id %s, status %s", "SM" + "x" * 20_000, "failed")
    (line,) = _lines(stream)
    assert "more characters]" in line and line.endswith(", status failed") and len(line) < 1200
    # Numbers keep their formatting and nothing short changes.
    logger.info("touch %d of %s: %r", 7, "sms", "ok")
    assert _lines(stream) == ["INFO test.own-handler: touch 7 of sms: 'ok'"]


def test_the_root_filter_makes_records_from_elsewhere_safe_too() -> None:
    """Records made before the factory was installed (or by another factory) pass the root's filter."""
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "sid %s", (FORGED,), None)
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "sid " + log_safe(FORGED) and "\n" not in record.getMessage()


def test_tracebacks_keep_their_lines_but_lose_other_controls(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    try:
        raise ValueError("bad \x1b[31m\x00 value")
    except ValueError:
        logger.exception("listener failed")
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    assert "Traceback (most recent call last):" in text and "ValueError: bad \\x1b[31m\\x00 value" in text
    assert "\x1b" not in text and "\x00" not in text


# --- the webhooks: ids checked before use ----------------------------------------------------------------

TOKEN = "log-injection-token"
URL = "https://hooks.example.test/hooks/twilio/x"


def _signed(form: dict[str, str]) -> tuple[dict[str, str], bytes]:
    return ({"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(URL, form)},
            urllib.parse.urlencode(form).encode())


@pytest.mark.parametrize("sid", [FORGED, "SM" + "x" * 20_000, "SM\x00", "SM 1", "SM1\n", "ＳＭ１"])
def test_a_message_sid_that_is_no_twilio_id_is_refused_unused(db_url: str, sid: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    customer = make_customer(db_url)
    touch = make_touch(db_url, customer, "k1", provider_message_id="SM1")
    caplog.set_level(logging.DEBUG)
    status, answer = handle_twilio_status(URL, *_signed({"MessageSid": sid, "MessageStatus": "failed",
                                                          "ErrorCode": "30005"}), db_url=db_url, auth_token=TOKEN)
    assert (status, answer) == (400, "MessageSid is not a provider id (1 to 64 letters, digits, _ or -)")
    status, _ = handle_twilio_inbound(URL, *_signed({"MessageSid": sid, "From": "+8613812345678", "Body": "TD"}),
                                      db_url=db_url, auth_token=TOKEN, keywords=["TD"])
    assert status == 400
    assert touch_row(db_url, touch).status == "sent" and outcomes(db_url) == []
    assert "FAKE LOG LINE" not in caplog.text and "x" * 1000 not in caplog.text


def test_an_overlong_error_code_or_status_is_refused_briefly(db_url: str) -> None:
    headers, body = _signed({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "9" * 5000})
    assert handle_twilio_status(URL, headers, body, db_url=db_url, auth_token=TOKEN) == (
        400, "ErrorCode must be a number of at most 12 digits")
    status, answer = handle_twilio_status(URL, *_signed({"MessageSid": "SM1", "MessageStatus": "y" * 20_000}),
                                          db_url=db_url, auth_token=TOKEN)
    assert status == 400 and len(answer) < 100
