"""E-mail adapter (smtplib) against a real aiosmtpd server; checked at the server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from channels.base import OutboundMessage, RenderedMessage
from channels.email_smtp import SmtpEmailAdapter, SmtpSettings, message_id
from standins.smtp_server import SmtpStandin

SENDER = "平安服务 <service@insurer.example.com>"


def mail(i: int, to: str | None = None, category: str = "service") -> OutboundMessage:
    content = RenderedMessage(
        channel="email",
        template="renewal",
        locale="zh-CN",
        subject="您的保单续保提醒",
        text="尊敬的客户：您的车险将于 12 月 1 日到期。",
        html="<p>尊敬的客户：您的车险将于 <b>12 月 1 日</b>到期。</p>",
    )
    return OutboundMessage(i, f"c{i}:renewal:s1:2026-W48", to or f"customer{i}@example.org", content, category)


@pytest.fixture
def server() -> Iterator[SmtpStandin]:
    with SmtpStandin() as standin:
        yield standin


def plain_adapter(server: SmtpStandin, **options: object) -> SmtpEmailAdapter:
    settings = SmtpSettings(server.host, server.port, starttls=False, timeout=5)
    return SmtpEmailAdapter(settings, SENDER, **options)  # type: ignore[arg-type]


async def test_batch_is_delivered_on_one_connection_with_both_parts(server: SmtpStandin) -> None:
    adapter = plain_adapter(server)
    messages = [mail(1), mail(2)]
    results = await adapter.send_batch(messages)

    assert [(r.touch_key, r.ok) for r in results] == [(m.touch_key, True) for m in messages]
    assert len(server.messages) == 2
    assert len({m.session for m in server.messages}) == 1  # one connection for the batch
    for message, result, received in zip(messages, results, server.messages, strict=True):
        assert received.mail_from == "service@insurer.example.com"
        assert received.rcpt_tos == [message.to]
        email = received.message
        assert email["To"] == message.to
        assert email["Subject"] == "您的保单续保提醒"
        assert email["From"].addresses[0].display_name == "平安服务"
        assert email["Message-ID"] == message_id(message.touch_key, "insurer.example.com") == result.provider_message_id
        assert email.get_content_type() == "multipart/alternative"
        plain, html = email.iter_parts()
        assert (plain.get_content_type(), plain.get_content_charset()) == ("text/plain", "utf-8")
        assert (html.get_content_type(), html.get_content_charset()) == ("text/html", "utf-8")
        assert plain.get_content().strip() == message.content.text
        assert html.get_content().strip() == message.content.html
        assert email["List-Unsubscribe"] is None  # service mail


async def test_marketing_mail_carries_list_unsubscribe(server: SmtpStandin) -> None:
    adapter = plain_adapter(
        server,
        unsubscribe_url="https://insurer.example.com/u/{key}",
        unsubscribe_mailto="unsubscribe@insurer.example.com",
    )
    [result] = await adapter.send_batch([mail(1, category="marketing")])
    assert result.ok
    email = server.messages[0].message
    # Folded by the generator (the value is longer than a line); unfolding leaves leading FWS.
    assert email["List-Unsubscribe"].strip() == (
        "<https://insurer.example.com/u/c1%3Arenewal%3As1%3A2026-W48>, "
        "<mailto:unsubscribe@insurer.example.com?subject=unsubscribe>"
    )
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_resend_of_a_touch_has_the_same_message_id(server: SmtpStandin) -> None:
    adapter = plain_adapter(server)
    first = await adapter.send_batch([mail(1)])
    again = await adapter.send_batch([mail(1)])
    assert first[0].provider_message_id == again[0].provider_message_id
    assert server.log.duplicates() == {message_id(mail(1).touch_key, "insurer.example.com"): 2}


async def test_starttls_and_auth() -> None:
    with SmtpStandin(username="relay-user", password="relay-pass", starttls=True) as server:
        settings = SmtpSettings(
            server.host,
            server.port,
            username="relay-user",
            password="relay-pass",
            starttls=True,
            tls_context=server.client_tls_context(),
            timeout=5,
        )
        [result] = await SmtpEmailAdapter(settings, SENDER).send_batch([mail(1)])
        assert result.ok
        [received] = server.messages
        assert received.tls
        assert received.authenticated_as == "relay-user"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_auth_is_required_and_a_bad_password_is_retryable() -> None:
    with SmtpStandin(username="relay-user", password="relay-pass") as server:
        settings = SmtpSettings(server.host, server.port, username="relay-user", password="wrong", starttls=False)
        results = await SmtpEmailAdapter(settings, SENDER).send_batch([mail(1), mail(2)])
        # Our relay refusing us is not the customer's fault: retry later, do not fall back.
        assert [(r.ok, r.error_class, r.error_code) for r in results] == [(False, "retryable", "535")] * 2
        unauthenticated = SmtpSettings(server.host, server.port, starttls=False)
        [refused] = await SmtpEmailAdapter(unauthenticated, SENDER).send_batch([mail(3)])
        # 530 comes to MAIL FROM: our session is refused, not the customer's address.
        assert (refused.ok, refused.error_class, refused.error_code) == (False, "retryable", "530")
        assert server.messages == []


async def test_a_message_over_the_relays_size_limit_is_refused_permanently_at_mail_from() -> None:
    with SmtpStandin(size_limit=2_000) as server:
        adapter = plain_adapter(server)
        big = replace(mail(2), content=replace(mail(2).content, text="续保" * 2_000))
        results = await adapter.send_batch([big, mail(3)])
    # 552 to MAIL FROM with SIZE= (RFC 1870) is about this message: no retry makes it smaller.
    assert [(r.ok, r.error_class, r.error_code) for r in results] == [(False, "permanent", "552"), (True, None, None)]


async def test_smtp_replies_are_classified_and_the_batch_goes_on(server: SmtpStandin) -> None:
    server.rejected.add("gone@example.org")
    server.deferred.add("full@example.org")
    results = await plain_adapter(server).send_batch(
        [mail(1, "gone@example.org"), mail(2, "full@example.org"), mail(3)]
    )
    assert [(r.ok, r.error_class, r.error_code) for r in results] == [
        (False, "permanent", "550"),
        (False, "retryable", "450"),
        (True, None, None),
    ]
    assert "gone@" not in (results[0].error_reason or "")
    assert [m.rcpt_tos for m in server.messages] == [["customer3@example.org"]]


async def test_data_refusals_map_by_reply_class(server: SmtpStandin) -> None:
    # A reply to the final dot is definite (only 250 means the relay took the mail), so a
    # 4yz there is retried like any transient refusal, not treated as "delivery unknown".
    adapter = plain_adapter(server)
    server.faults.configure(error_5xx_rate=1.0)  # the stand-in answers DATA with 451
    [transient] = await adapter.send_batch([mail(1)])
    server.faults.configure(error_5xx_rate=0.0, permanent_rate=1.0)  # 554
    [permanent] = await adapter.send_batch([mail(2)])
    assert (transient.error_class, transient.error_code) == ("retryable", "451")
    assert (permanent.error_class, permanent.error_code) == ("permanent", "554")


async def test_dropped_connection_is_unknown_only_after_the_final_dot(server: SmtpStandin) -> None:
    adapter = plain_adapter(server)
    server.dropped.add("drop@example.org")
    [before, after_rcpt] = await adapter.send_batch([mail(1, "drop@example.org"), mail(2)])
    server.faults.configure(accepted_5xx_rate=1.0)  # queued, then the connection drops before the 250
    [after] = await adapter.send_batch([mail(3)])

    # Dropped at RCPT: no data was sent, so the relay cannot have the mail. Safe to retry.
    assert (before.ok, before.error_class, before.error_code) == (False, "retryable", "connection_lost")
    assert "before the message data was sent" in (before.error_reason or "")
    assert after_rcpt.ok  # the next message of the batch goes out on a new connection
    # Dropped after the final dot: the relay has it (SMTP has no lookup and no dedup), so it
    # must not be retried: unknown, for a person to look at.
    assert (after.ok, after.error_class, after.error_code) == (False, "unknown", "connection_lost")
    assert "after the message data was sent" in (after.error_reason or "")
    assert [e.key for e in server.log.entries] == [message_id(m.touch_key, "insurer.example.com")
                                                    for m in (mail(2), mail(3))]


async def test_unreachable_relay_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = SmtpSettings("127.0.0.1", port, starttls=False, timeout=2)
    results = await SmtpEmailAdapter(settings, SENDER).send_batch([mail(1), mail(2)])
    assert [(r.ok, r.error_class, r.error_code) for r in results] == [(False, "retryable", "connect_error")] * 2


async def test_several_connections_split_the_batch_in_order(server: SmtpStandin) -> None:
    adapter = plain_adapter(server, connections=3)
    messages = [mail(i) for i in range(7)]
    results = await adapter.send_batch(messages)
    assert [r.touch_key for r in results] == [m.touch_key for m in messages]
    assert all(r.ok for r in results)
    assert len({m.session for m in server.messages}) == 3


def with_subject(message: OutboundMessage, subject: str) -> OutboundMessage:
    return replace(message, content=replace(message.content, subject=subject))


async def test_a_message_that_cannot_be_written_fails_alone_and_the_batch_goes_on() -> None:
    # A CR/LF in the address (header injection) or a non-ASCII address on a relay without SMTPUTF8
    # is this message's problem: it fails permanently (so the fallback channel is tried) and the
    # other messages of the batch, sent before and after it on the same connection, are answered.
    with SmtpStandin(smtputf8=False) as server:
        adapter = plain_adapter(server)
        injected = mail(2, "victim@example.org\r\nBcc: other@example.org")
        results = await adapter.send_batch([mail(1), injected, mail(3, "张三@example.org"),
                                            with_subject(mail(4), "续保\r\nBcc: other@example.org"),
                                            mail(5)])
        assert [(r.ok, r.error_class, r.error_code) for r in results] == [
            (True, None, None),
            (False, "permanent", "header"),
            (False, "permanent", "smtputf8"),
            (False, "permanent", "header"),
            (True, None, None),
        ]
        assert "victim@" not in (results[1].error_reason or "")
        assert [m.rcpt_tos for m in server.messages] == [["customer1@example.org"], ["customer5@example.org"]]
        assert len({m.session for m in server.messages}) == 1


async def test_a_non_ascii_address_goes_out_with_smtputf8_where_the_relay_offers_it(server: SmtpStandin) -> None:
    [result] = await plain_adapter(server).send_batch([mail(1, "张三@example.org")])
    assert result.ok
    [received] = server.messages
    assert received.rcpt_tos == ["张三@example.org"] and "SMTPUTF8" in received.mail_options
    assert received.message["To"] == "张三@example.org"
    assert received.message["From"].addresses[0].display_name == "平安服务"


async def test_chinese_and_long_lines_travel_as_7_bit_data_without_8bitmime(server: SmtpStandin) -> None:
    # SMTP without BODY=8BITMIME (RFC 6152) carries 7-bit data only: a UTF-8 body goes in base64 or
    # quoted-printable, and no line of the data is longer than RFC 5322's 78 characters.
    long_text = "尊敬的客户：" + "您的保单续保提醒。" * 120 + "\n" + "x" * 1200
    long = replace(mail(2), content=replace(mail(2).content, text=long_text, html=f"<p>{long_text}</p>"))
    results = await plain_adapter(server).send_batch([mail(1), long])
    assert all(r.ok for r in results)
    for received in server.messages:
        assert "BODY=8BITMIME" not in received.mail_options
        assert received.raw.isascii()
        assert max(len(line) for line in received.raw.splitlines()) <= 78
        assert received.message["Subject"] == "您的保单续保提醒"
    plain, html = server.messages[1].message.iter_parts()
    assert plain.get_content().strip() == long_text and html.get_content().strip() == f"<p>{long_text}</p>"


async def test_marketing_mail_lists_the_customers_signed_opt_out_link_for_one_click(server: SmtpStandin) -> None:
    # The link dispatch signs for the customer (channels.optout) is the one the webhooks answer, to a
    # GET with a confirmation and to RFC 8058's one-click POST; without a configured URL it is the only one.
    link = "https://journeys.example.com/hooks/unsubscribe/WyJDMDAwMDAwMSIsImVtYWlsIl0.sig"
    marketing = replace(mail(1, category="marketing"), unsubscribe_url=link)
    service = replace(mail(2), unsubscribe_url=link)
    results = await plain_adapter(server, unsubscribe_mailto="unsubscribe@insurer.example.com").send_batch(
        [marketing, service])
    assert all(r.ok for r in results)
    sent, notice = (m.message for m in server.messages)
    assert sent["List-Unsubscribe"].strip() == f"<{link}>, <mailto:unsubscribe@insurer.example.com?subject=unsubscribe>"
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert notice["List-Unsubscribe"] is None and notice["List-Unsubscribe-Post"] is None
