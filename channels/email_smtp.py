"""E-mail over SMTP with the standard library (``smtplib`` in worker threads).

One connection per batch (or per slice of a batch when ``connections`` > 1):
connect, STARTTLS and AUTH once, then one transaction per message. Each message
is multipart/alternative (plain text + HTML from the same RenderedMessage, both
UTF-8); marketing mail carries ``List-Unsubscribe`` and, with an https URL,
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058). The
``Message-ID`` is derived from the touch key, so a re-sent touch carries the
same Message-ID and is recognisable at the relay and in the inbox.

Replies: 4xx are transient (retryable), 5xx permanent (e.g. 550 mailbox
unavailable). A reply is definite even at the final dot of DATA: anything but 250
there means the relay did not take the message (RFC 5321). What is not definite is the
connection dropping (or timing out) after the final dot was written and before the reply
came: the relay may have queued the mail, and SMTP has no lookup and no dedup, so that
is class ``unknown`` (failed for a person to look at, never re-sent). The same failure
before the final dot was written is retryable: a relay never takes a message whose
data did not end. Connection and AUTH failures are retryable: they concern our relay,
not the customer's address; so is a 5xx to MAIL FROM (our sender refused), but for 552 (size).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote

from channels.base import ErrorClass, OutboundMessage, SendResult
from channels.errors import CONNECT_ERROR, CONNECTION_LOST, TIMEOUT, Classified, classify_smtp, classify_smtp_sender
from store.masking import mask_email, mask_text

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

# The end of a message's data as smtplib writes it: CRLF "." CRLF. Dot-stuffing (RFC 5321
# §4.5.2) keeps it out of the message itself, and no command ends with it.
_END_OF_DATA = b"\r\n.\r\n"
# Bodies in base64 or quoted-printable, never raw 8-bit: smtplib declares no BODY=8BITMIME for an
# ASCII envelope, and without it SMTP carries 7-bit data only (RFC 5321 §2.4, RFC 6152); a relay
# may refuse or mangle a UTF-8 body sent as 8bit.
_SEVEN_BIT = policy.default.clone(cte_type="7bit")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    implicit_tls: bool = False  # SMTPS (port 465) instead of STARTTLS
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = None  # default: system trust store


def message_id(touch_key: str, domain: str) -> str:
    """Deterministic per touch: the same touch always gets the same Message-ID."""
    digest = hashlib.sha256(touch_key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


class _Smtp(smtplib.SMTP):
    """``smtplib.SMTP`` that notes when a message's data has been written up to its final dot:
    from then on the relay may have the message, whatever happens to the reply."""

    data_ended = False

    def send(self, s: ReadableBuffer | str) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(_END_OF_DATA):
            self.data_ended = True


class _SmtpSsl(_Smtp, smtplib.SMTP_SSL):
    pass


class SmtpEmailAdapter:
    channel = "email"

    def __init__(
        self,
        settings: SmtpSettings,
        sender: str,
        *,
        unsubscribe_url: str | None = None,
        unsubscribe_mailto: str | None = None,
        connections: int = 1,
    ) -> None:
        """``sender`` is ``addr`` or ``Name <addr>``; ``unsubscribe_url`` may contain ``{key}``
        (replaced by the URL-quoted touch key) and ``unsubscribe_mailto`` is an address."""
        self.settings = settings
        self.sender = sender
        self.envelope_from = parseaddr(sender)[1]
        if "@" not in self.envelope_from:
            raise ValueError("EMAIL_FROM must be an e-mail address")
        self.domain = self.envelope_from.rsplit("@", 1)[1]
        self.unsubscribe_url = unsubscribe_url
        self.unsubscribe_mailto = unsubscribe_mailto
        self.connections = max(1, connections)

    # -- building -------------------------------------------------------------------
    def build(self, message: OutboundMessage) -> EmailMessage:
        content = message.content
        mail = EmailMessage(policy=_SEVEN_BIT)
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = content.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id(message.touch_key, self.domain)
        if message.category == "marketing":
            # The customer's own signed link first: it is the one our webhooks answer (GET shows a
            # confirmation, POST opts out). The configured URL is for a relay-side handler.
            url = message.unsubscribe_url or (
                self.unsubscribe_url.replace("{key}", quote(message.touch_key, safe=""))
                if self.unsubscribe_url else None)
            targets = [f"<{url}>"] if url else []
            if self.unsubscribe_mailto:
                targets.append(f"<mailto:{self.unsubscribe_mailto}?subject=unsubscribe>")
            if targets:
                mail["List-Unsubscribe"] = ", ".join(targets)
            if url and url.startswith("https://"):
                # RFC 8058 one-click needs an https URI that accepts the POST.
                mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(content.text or "", charset="utf-8")
        if content.html:
            mail.add_alternative(content.html, subtype="html", charset="utf-8")
        return mail

    # -- sending --------------------------------------------------------------------
    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        if not messages:
            return []
        size = -(-len(messages) // self.connections)
        slices = [messages[i : i + size] for i in range(0, len(messages), size)]
        # smtplib blocks: each slice runs on its own connection in a worker thread.
        parts = await asyncio.gather(*(asyncio.to_thread(self._send_slice, part) for part in slices))
        return [result for part in parts for result in part]

    def _connect(self) -> _Smtp:
        s = self.settings
        context = s.tls_context or ssl.create_default_context()
        conn: _Smtp
        if s.implicit_tls:
            conn = _SmtpSsl(s.host, s.port, timeout=s.timeout, context=context)
        else:
            conn = _Smtp(s.host, s.port, timeout=s.timeout)
        try:
            conn.ehlo()
            if s.starttls and not s.implicit_tls:
                conn.starttls(context=context)
                conn.ehlo()
            if s.username:
                conn.login(s.username, s.password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def _send_slice(self, messages: list[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        conn: _Smtp | None = None
        try:
            for index, message in enumerate(messages):
                if conn is None:
                    try:
                        conn = self._connect()
                    except smtplib.SMTPAuthenticationError as exc:
                        return results + self._all_failed(messages[index:], str(exc.smtp_code), "SMTP AUTH refused")
                    except (OSError, smtplib.SMTPException) as exc:
                        reason = f"cannot connect to the SMTP relay: {type(exc).__name__}"
                        return results + self._all_failed(messages[index:], CONNECT_ERROR, reason)
                result, keep = self._send_one(conn, message)
                results.append(result)
                if not keep:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    conn.close()
        return results

    def _send_one(self, conn: _Smtp, message: OutboundMessage) -> tuple[SendResult, bool]:
        """Send on ``conn``; the flag says whether the connection is still usable."""
        try:
            mail = self.build(message)
        except ValueError as exc:
            # The email package refuses a header it cannot write safely (a CR or LF in the address
            # or subject: header injection). That is this message's fault, not the batch's: raised,
            # it would fail every message of the batch as "unknown", the ones already sent included.
            return self._unsendable(message, "header", f"cannot be written as a header: {exc}"), True
        mid = str(mail["Message-ID"])
        conn.data_ended = False
        try:
            conn.send_message(mail, from_addr=self.envelope_from, to_addrs=[message.to])
        except smtplib.SMTPNotSupportedError:
            # Raised before MAIL FROM: a non-ASCII address needs SMTPUTF8 (RFC 6531), which this relay
            # does not offer. Retrying on the same relay cannot succeed; the connection is untouched.
            return self._unsendable(message, "smtputf8", "the address is not ASCII and the relay does not "
                                    "offer SMTPUTF8"), True
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (550, b""))
            return self._refused(message, code, reply), code != 421
        except smtplib.SMTPSenderRefused as exc:
            verdict = classify_smtp_sender(exc.smtp_code)
            return self._refused(message, exc.smtp_code, exc.smtp_error, verdict), exc.smtp_code != 421
        except smtplib.SMTPResponseException as exc:  # data refused (also at the final dot)
            return self._refused(message, exc.smtp_code, exc.smtp_error), exc.smtp_code != 421
        except TimeoutError:  # socket.timeout is an alias
            return self._lost(message, conn, TIMEOUT, "no reply from the SMTP relay within the timeout"), False
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            return self._lost(message, conn, CONNECTION_LOST, f"connection lost: {type(exc).__name__}"), False
        return SendResult(message.touch_key, ok=True, provider_message_id=mid, provider_status="250"), True

    def _refused(self, message: OutboundMessage, code: int, reply: bytes | str,
                 verdict: Classified | None = None) -> SendResult:
        # Relays often quote the address in the reply; it is masked before it is logged or stored.
        text = mask_text(reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply))
        verdict = verdict or classify_smtp(code)
        log.info("mail to %s refused: %s %s", mask_email(message.to), code, text)
        return SendResult(
            message.touch_key,
            ok=False,
            error_class=verdict.error_class,
            error_code=str(code),
            error_reason=f"{verdict.reason}: {text}"[:255],
        )

    def _unsendable(self, message: OutboundMessage, code: str, reason: str) -> SendResult:
        log.info("mail to %s not sent: %s", mask_email(message.to), mask_text(reason))
        return SendResult(message.touch_key, ok=False, error_class="permanent", error_code=code,
                          error_reason=mask_text(reason)[:255])

    def _lost(self, message: OutboundMessage, conn: _Smtp, code: str, reason: str) -> SendResult:
        klass: ErrorClass
        if conn.data_ended:
            # The relay may have queued the mail before the connection went: delivery is unknown,
            # and SMTP offers neither a lookup nor a dedup, so it must not be sent again blindly.
            klass, reason = "unknown", f"{reason} after the message data was sent"
        else:
            klass, reason = "retryable", f"{reason} before the message data was sent"
        log.info("mail to %s not confirmed: %s", mask_email(message.to), reason)
        return SendResult(message.touch_key, ok=False, error_class=klass, error_code=code, error_reason=reason)

    def _all_failed(self, messages: list[OutboundMessage], code: str, reason: str) -> list[SendResult]:
        return [
            SendResult(m.touch_key, ok=False, error_class="retryable", error_code=code, error_reason=reason)
            for m in messages
        ]

    async def aclose(self) -> None:
        """Connections live only for a batch; nothing to close."""
