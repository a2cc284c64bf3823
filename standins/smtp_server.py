"""A real SMTP server (aiosmtpd) standing in for the mail relay.

AUTH (PLAIN/LOGIN) is required when a username is configured; STARTTLS is
offered when asked for, with a self-signed certificate for 127.0.0.1/localhost
generated at start-up (the key only ever exists in memory and a temporary file
that is removed at once; never in the repository). Received messages are parsed
and kept; the accepted log is keyed by Message-ID, which our adapter derives
from the touch key, so a re-sent touch shows up as a duplicate.

Faults are drawn at the final dot of DATA. A reply there is definite in SMTP (only 250
means the relay took the message), so the faults that take the message first do not
reply: ``timeout`` (after accept) queues it and hangs, ``5xx_after_accept`` queues it and
drops the connection. A recipient in ``dropped`` makes the server drop the connection at
RCPT, before any data: the message cannot have been taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
import tempfile
import uuid
from dataclasses import dataclass
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from standins.base import HOST
from standins.faults import Accepted, AcceptedLog, Fault, FaultPlan, Faults


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    authenticated_as: str | None
    tls: bool
    session: int  # which SMTP session carried it (connection reuse is visible)
    mail_options: list[str]  # MAIL FROM parameters (BODY=8BITMIME, SMTPUTF8)


def self_signed_certificate() -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for 127.0.0.1 and localhost, valid one day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_tls_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # load_cert_chain only reads files: write both to a private temp file and remove it at once.
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(cert_pem + key_pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


def _fault_reply(fault: Fault) -> str:
    if fault == "permanent":
        return "554 5.7.1 Message rejected"
    if fault == "timeout":
        return "451 4.4.2 Timeout"
    return "451 4.3.0 Temporary local problem, try again later"  # a 5xx or a 429 from an HTTP provider


class _Handler:
    def __init__(self, standin: SmtpStandin) -> None:
        self.standin = standin

    async def handle_RCPT(  # aiosmtpd's hook names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.standin.dropped:
            _drop(server)
            return "421 4.4.2 Connection dropped"  # never read: the connection is gone
        if address.lower() in self.standin.rejected:
            return "550 5.1.1 Mailbox unavailable"
        if address.lower() in self.standin.deferred:
            return "450 4.2.1 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        standin = self.standin
        await standin.faults.latency()
        fault = standin.faults.draw()
        refusal = await standin.faults.refusal(fault, _fault_reply)
        if refusal is not None:
            return refusal
        raw = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes) else b"")
        if "SMTPUTF8" in envelope.mail_options:
            # RFC 6531: headers are UTF-8 as they stand; the bytes parser would read them as ASCII.
            parsed = message_from_string(raw.decode("utf-8", errors="replace"), policy=policy.default)
        else:
            parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            raw=raw,
            message=parsed,
            authenticated_as=standin.authenticated.get(id(session)),
            tls=session.ssl is not None,
            session=id(session),
            mail_options=list(envelope.mail_options),
        )
        standin.messages.append(mail)
        queue_id = uuid.uuid4().hex[:12].upper()
        for rcpt in envelope.rcpt_tos:
            standin.log.add(Accepted(queue_id, rcpt, parsed.get("Message-ID"), {"subject": parsed.get("Subject")}))
        # The message is queued either way: after a timeout the client never sees this reply.
        await standin.faults.lost_reply(fault)
        if fault == "5xx_after_accept":
            _drop(server)
        return f"250 2.0.0 Ok: queued as {queue_id}"


def _drop(server: SMTP) -> None:
    """Close the connection at once, without a reply (what the client sees when a relay dies)."""
    transport = server.transport
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()


class _EphemeralController(Controller):
    """aiosmtpd's Controller, bound to port 0; the real port is read back from the socket."""

    def _trigger_server(self) -> None:
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpStandin:
    kind = "smtp"

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        smtputf8: bool = True,
        size_limit: int = 33_554_432,
        faults: FaultPlan | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.starttls = starttls
        self.smtputf8 = smtputf8  # advertise SMTPUTF8 (RFC 6531), as most relays now do
        self.size_limit = size_limit  # advertised as SIZE (RFC 1870): a larger MAIL FROM SIZE= gets 552
        self.faults = Faults(faults)
        self.log = AcceptedLog()
        self.messages: list[ReceivedMail] = []
        self.rejected: set[str] = set()  # recipients answered 550 at RCPT
        self.deferred: set[str] = set()  # recipients answered 450 at RCPT
        self.dropped: set[str] = set()  # recipients whose RCPT makes the server drop the connection
        self.authenticated: dict[int, str] = {}
        self.cert_pem: bytes | None = None
        self.host = HOST
        self.port = 0
        self._controller: _EphemeralController | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        ):
            self.authenticated[id(session)] = self.username or ""
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpStandin:
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": self.smtputf8, "data_size_limit": self.size_limit}
        if self.starttls:
            self.cert_pem, key_pem = self_signed_certificate()
            kwargs["tls_context"] = _server_tls_context(self.cert_pem, key_pem)
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # Without STARTTLS configured, allow AUTH in the clear so tests can cover auth alone.
            kwargs["auth_require_tls"] = self.starttls
        self._controller = _EphemeralController(
            _Handler(self), hostname=HOST, port=0, loop=asyncio.new_event_loop(), **kwargs
        )
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        if self.cert_pem is None:
            raise RuntimeError("STARTTLS is not enabled on this stand-in")
        return ssl.create_default_context(cadata=self.cert_pem.decode())

    def summary(self) -> dict[str, Any]:
        return {**self.log.summary(), "faults": dict(self.faults.drawn)}

    def __enter__(self) -> SmtpStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
