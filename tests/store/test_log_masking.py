"""No log record of any logger carries an unmasked phone, e-mail or ID number (SPEC §9),
including loggers with their own handlers and formatters, like uvicorn's access log, however the
number or address is written: with separators, in full-width digits, or percent-encoded as a URL
carries it (the access log writes the request line as it was sent)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prefect.logging.formatters import PrefectFormatter
from prefect.logging.loggers import PrefectLogAdapter
from uvicorn.logging import AccessFormatter

from store.masking import install_masking_everywhere, mask_text, redact_text

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


FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
HALF_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
MOBILES = st.builds(lambda second, rest: f"1{second}{rest:09d}", st.sampled_from("3456789"), st.integers(0, 10**9 - 1))
# How a mobile is written by people and sent in a URL: its three groups apart or not, with or without +86.
PHONE_STYLES = [
    lambda n: n, lambda n: f"+86{n}", lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"+86 {n[:3]} {n[3:7]} {n[7:]}", lambda n: f"{n[:3]}%20{n[3:7]}%20{n[7:]}",
    lambda n: f"{n[:3]}+{n[3:7]}+{n[7:]}", lambda n: f"%2B86-{n[:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"{n[:3]}.{n[3:7]}.{n[7:]}", lambda n: n.translate(FULL_WIDTH),
    lambda n: f"0086{n}", lambda n: f"0086 {n[:3]} {n[3:7]} {n[7:]}",
]
LOCAL_PARTS = st.from_regex(r"[a-z][a-z0-9._+-]{2,12}[a-z0-9]", fullmatch=True)
EMAIL_STYLES = [lambda local: f"{local}@example.com", lambda local: f"{local.replace('+', '%2B')}%40example.com",
                # A Chinese input method's full-width at sign; an address in a URL inside another URL's query.
                lambda local: f"{local}＠example.com", lambda local: f"{local.replace('+', '%252B')}%2540example.com"]
CONTEXTS = ["{}", "GET /api/customers/{} HTTP/1.1", "/ops/explain?customer={}&at=2026-11-23", "sent to {}, ok"]


@given(MOBILES, st.sampled_from(PHONE_STYLES), st.sampled_from(CONTEXTS))
def test_a_mobile_is_masked_however_it_is_written(number: str, style: object, context: str) -> None:
    written = style(number)  # type: ignore[operator]
    masked = mask_text(context.format(written))
    assert written not in masked
    assert context.format(f"{number[:3]}****{number[7:]}") == masked.translate(HALF_WIDTH)


@given(LOCAL_PARTS, st.sampled_from(EMAIL_STYLES), st.sampled_from(CONTEXTS))
def test_an_email_address_is_masked_however_it_is_written(local: str, style: object, context: str) -> None:
    written = style(local)  # type: ignore[operator]
    masked = mask_text(context.format(written))
    assert local[1:] not in masked and local.replace("+", "%2B")[1:] not in masked
    assert "***@example.com" in masked


def test_a_percent_encoded_request_line_is_masked(isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = isolated_logger
    logger.handlers[0].setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s',
                                                    use_colors=False))
    for path in ("/hooks/unsubscribe/wang.xiaoming%40example.com", "/api/customers/%2B86-138-1234-5678",
                 "/ops/explain?customer=138+1234+5678"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
    text = stream.getvalue()
    assert "xiaoming" not in text and "1234" not in text and text.count("GET ") == 3


OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz1"


@pytest.mark.parametrize("written", [
    f"/hooks/wechat?signature=s&nonce=1&openid={OPENID}",
    f"/login?next=%2Fhooks%2Fwechat%3Fopenid%3D{OPENID}",
    f'{{"touser": "{OPENID}", "template_id": "t"}}',
    f"{{'openid': '{OPENID}'}}",
    f"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName></xml>",
])
def test_an_openid_is_masked_in_every_notation_it_travels_in(written: str) -> None:
    masked = mask_text(written)
    assert OPENID not in masked and OPENID[1:-4] not in masked
    assert "o****xYz1" in masked


def test_what_only_the_formatted_message_shows_is_masked(isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    """The message and each argument masked apart missed an openid named in the message and given as
    its argument, one given bare, a phone cut over two arguments and a lone dict argument."""
    logger, stream = isolated_logger
    logger.info("wechat send to openid=%s failed", OPENID)
    logger.info("sent to %s", OPENID)
    logger.info("customer %(openid)s", {"openid": OPENID})
    logger.info("template send %s", {"touser": OPENID, "phone": PHONE})
    logger.info("dialled %s%s", "+86138", "12345678")
    logger.info("wrote to %s at %s", EMAIL, "15912345678")
    text = stream.getvalue()
    assert OPENID not in text and OPENID[1:-4] not in text and "13812345678" not in text
    assert EMAIL not in text and "12345678" not in text
    assert text.count("o****xYz1") == 4 and "138****5678" in text and "159****5678" in text
    assert "wechat send to openid=o****xYz1 failed" in text and "********" not in text


def test_an_exception_naming_an_openid_is_masked_in_prefects_loggers(
        isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    """A flow run's logger is an adapter over Prefect's own logger and handler formats with Prefect's
    formatter; the record factory masks them as it masks ours, the exception's text included."""
    logger, stream = isolated_logger
    logger.handlers[0].setFormatter(PrefectFormatter(
        format="%(name)s - %(message)s", flow_run_fmt="Flow run %(flow_run_name)r - %(message)s"))
    run_logger = PrefectLogAdapter(logging.getLogger("prefect.flow_runs"), extra={"flow_run_name": "plan-1"})
    run_logger.logger.addHandler(logger.handlers[0])
    run_logger.logger.propagate = False
    try:
        try:
            raise ValueError("invalid openid", OPENID, PHONE)
        except ValueError as error:
            run_logger.exception("send failed for openid=%s: %s", OPENID, error)
    finally:
        run_logger.logger.removeHandler(logger.handlers[0])
        run_logger.logger.propagate = True
    text = stream.getvalue()
    assert "Flow run 'plan-1' - send failed for openid=o****xYz1: ('invalid openid', 'o****xYz1'" in text
    assert "ValueError: ('invalid openid', 'o****xYz1', '138****5678')" in text
    assert OPENID not in text and "13812345678" not in text


LOWER_OPENID = "o6_bmjrptiirnnr7zcadq2a9jrvg"


def test_a_bare_openid_in_lower_case_is_masked_and_words_of_its_length_are_not(
        isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    """A bare openid was masked only when it held a capital letter, so some official accounts' openids, all
    in lower case, went to the log whole. Words of the same shape still read as written."""
    logger, stream = isolated_logger
    logger.info("sent to %s", LOWER_OPENID)
    logger.info("wechat refused %s: 43004", LOWER_OPENID.replace("_", "-"))
    logger.info("journey %s planned", "observability_metrics_export")
    text = stream.getvalue()
    assert LOWER_OPENID[1:-4] not in text and LOWER_OPENID.replace("_", "-")[1:-4] not in text
    assert text.count("o****jrvg") == 2 and "journey observability_metrics_export planned" in text
    assert redact_text(f"user {LOWER_OPENID} blocked") == "user [removed] blocked"


PUSH_ID = "1a0018970af2a5b1c4d"


@pytest.mark.parametrize("written", [
    f'{{"platform": "all", "audience": {{"registration_id": ["{PUSH_ID}"]}}}}',
    f"push_registration_id={PUSH_ID}",
    f"{{'registration_ids': ['{PUSH_ID}']}}",
])
def test_a_push_registration_id_named_as_such_is_masked(written: str) -> None:
    """A device's registration id went unmasked in any notation: nothing in the masking knew its name."""
    masked = mask_text(written)
    assert PUSH_ID not in masked and PUSH_ID[1:-4] not in masked and "1****1c4d" in masked
    assert mask_text(masked) == masked and PUSH_ID not in redact_text(written)


@pytest.mark.parametrize("written", [
    "110105 19491231 002X", "110105-19491231-002x", "１１０１０５１９４９１２３１００２Ｘ"])
def test_an_id_number_written_in_its_groups_or_in_full_width_is_masked(
        written: str, isolated_logger: tuple[logging.Logger, io.StringIO]) -> None:
    """Only the 18 characters run together were seen: in the groups people write it in, or with a
    full-width X, an ID number went to the log whole."""
    logger, stream = isolated_logger
    logger.info("customer gave id %s on the phone", written)
    text = stream.getvalue()
    assert "19491231" not in text and "１９４９１２３１" not in text and "*" * 11 in text
    assert "[removed]" in redact_text(f"id {written}")


def test_masking_twice_masks_once() -> None:
    for written in (f"openid={OPENID}", f"sent to {OPENID}", f"{{'touser': '{OPENID}'}}", PHONE, EMAIL, ID_NUMBER):
        once = mask_text(written)
        assert mask_text(once) == once
