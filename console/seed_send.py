"""Test sends: any template, its version in force rendered for a sample customer, sent to the console's seed list of
internal recipients through the real channel adapters.

The seed list (staff phones, e-mail addresses and WeChat openids) is kept in the ``kv`` table
under ``SEED_LIST_KEY``; ops edit it on the test-send page. A test send creates no touch, outcome
or enrollment, so no metric can count it (the figures are computed from those tables); each
message is marked as a test where the recipient sees it (``TEST_MARK`` before the SMS text and
the e-mail subject) and in its idempotency key (``test-…``), and each send is audited
(``test_send``) with the recipients masked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from channels.base import OutboundMessage, RenderedMessage, SendResult
from channels.registry import ChannelNotConfigured, build_adapter
from channels.template_files import LOCALES, available_templates, template_file
from console.auth import audit
from console.i18n import Translator
from console.labels import CHANNELS as CHANNEL_WORDS
from console.ops_preview import renderer_in_force, templates_in_force
from console.text_rules import blank
from engine.language.paths import templates_dir
from engine.language.template_context import sample_context
from engine.language.templates import RenderError
from store.clock import utcnow
from store.importing.fields import FieldError, email, phone
from store.masking import mask_email, mask_phone, mask_text
from store.models import AuditLog, KeyValue

SEED_LIST_KEY = "console.seed_list"
TEST_MARK = "[TEST] "
MAX_RECIPIENTS = 20
BATCH_DIGITS = 12
MAX_DETAIL = 200  # of a provider's message id or refusal, kept per recipient in the send's audit row
RECENT_SENDS = 50  # a user's test sends searched for the one whose results a page asks for
KEY_DIGITS = 16
# The channels a seed recipient has an address for (an app push needs a device, not a person).
SEED_CHANNELS: tuple[str, ...] = ("sms", "wechat", "email")


@dataclass(frozen=True)
class SeedRecipient:
    name: str
    phone: str | None = None
    email: str | None = None
    wechat_openid: str | None = None

    def address(self, channel: str) -> str | None:
        return {"sms": self.phone, "email": self.email, "wechat": self.wechat_openid}.get(channel)

    def masked(self) -> dict[str, object]:
        return {"name": self.name, "phone": mask_phone(self.phone) if self.phone else None,
                "email": mask_email(self.email) if self.email else None,
                "wechat_openid": (self.wechat_openid[:4] + "***") if self.wechat_openid else None}

    def key(self, secret: str) -> str:
        """Names this recipient in a form: a row's place in the list names someone else once the list changed
        after the page was drawn. Keyed with the console's secret: a plain digest of a phone the page shows with
        four digits masked would give the number back in 10,000 guesses."""
        fields = json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)
        return hmac.new(f"seed-list:{secret}".encode(), fields.encode(), hashlib.sha256).hexdigest()[:KEY_DIGITS]


class SeedListError(ValueError):
    """Why the seed list or a test send refused: a msgid of the console catalogues and its parameters, so
    the page says it in the reader's language (``words``: parameters that are msgids themselves)."""

    def __init__(self, message: str, *, words: dict[str, str] | None = None, **params: object) -> None:
        self.message, self.words, self.params = message, words or {}, params
        super().__init__(message % {**params, **self.words} if params or words else message)

    def shown(self, t: Translator) -> str:
        return t(self.message, **self.params, **{k: t(v) for k, v in self.words.items()})


def _channel(channel: str) -> dict[str, str]:
    return {"channel": CHANNEL_WORDS.get(channel, channel)}


def seed_list(session: Session) -> list[SeedRecipient]:
    row = session.get(KeyValue, SEED_LIST_KEY)
    return [SeedRecipient(**r) for r in (row.value.get("recipients", []) if row is not None else [])]


def _save(session: Session, recipients: list[SeedRecipient], now: datetime) -> None:
    row = session.get(KeyValue, SEED_LIST_KEY) or KeyValue(key=SEED_LIST_KEY, updated_at=now)
    row.value = {"recipients": [dataclasses.asdict(r) for r in recipients]}
    row.updated_at = now
    session.add(row)


def add_recipient(session: Session, actor: str, name: str, phone_text: str = "", email_text: str = "",
                  openid: str = "") -> SeedRecipient:
    """Add a staff member to the seed list; bad input raises SeedListError and stores nothing."""
    name, openid = name.strip()[:64], openid.strip()[:64]
    if blank(name):  # console.text_rules: white space or invisible characters alone name nobody
        raise SeedListError("Please fill in %(field)s.", words={"field": "Name"})
    recipient = SeedRecipient(name, _read(phone, phone_text, "Phone"), _read(email, email_text, "Email"),
                              openid or None)
    if not (recipient.phone or recipient.email or recipient.wechat_openid):
        raise SeedListError("give a phone, an e-mail address or a WeChat openid")
    recipients = seed_list(session)
    if len(recipients) >= MAX_RECIPIENTS:
        raise SeedListError("the seed list holds at most %(n)d recipients", n=MAX_RECIPIENTS)
    now = utcnow()
    _save(session, [*recipients, recipient], now)
    audit(session, actor, "seed_list_add", "seed_list", SEED_LIST_KEY, recipient.masked(), at=now)
    return recipient


def _read(reader: Callable[[str], str], text: str, field: str) -> str | None:
    """A phone or e-mail cell read by the CSV import's rules; the import's own words name its column."""
    if not text.strip():
        return None
    try:
        return reader(text)
    except FieldError:
        raise SeedListError("%(field)s cannot be read: check what was typed.", words={"field": field}) from None


def remove_recipient(session: Session, actor: str, index: int, key: str, secret: str) -> None:
    """Remove the recipient ``key`` names (``SeedRecipient.key``), shown at ``index`` when the page was drawn."""
    recipients = seed_list(session)
    at = [i for i, r in enumerate(recipients) if hmac.compare_digest(r.key(secret), key)]
    if not at:
        raise SeedListError("No such recipient.")
    # The same person twice is one entry to remove: the one at the place shown, else the first.
    gone = recipients.pop(index if index in at else at[0])
    now = utcnow()
    _save(session, recipients, now)
    audit(session, actor, "seed_list_remove", "seed_list", SEED_LIST_KEY, gone.masked(), at=now)


def templates() -> list[str]:
    return available_templates(templates_dir())


def render_test(template: str, channel: str, locale: str) -> RenderedMessage:
    """``template`` for ``channel`` rendered from its version in force for a sample customer and marked as
    a test; raises RenderError (also for a template with no approved version yet)."""
    message = renderer_in_force().render(template, channel, sample_context(locale), locale)
    if channel == "sms":
        return dataclasses.replace(message, text=TEST_MARK + message.text)
    if channel == "email":
        return dataclasses.replace(message, subject=TEST_MARK + message.subject)
    return message


@dataclass(frozen=True)
class TestSendResult:
    recipient: str  # the seed recipient's name
    ok: bool
    detail: str  # the provider's message id, or why it was not sent


async def _send(channel: str, messages: list[OutboundMessage], env: Mapping[str, str] | None) -> list[SendResult]:
    adapter = build_adapter(channel, env)
    try:
        return await adapter.send_batch(messages)
    finally:
        await adapter.aclose()


def new_batch() -> str:
    """The id of one test send (its messages' idempotency keys and its audit row carry it)."""
    return uuid.uuid4().hex[:BATCH_DIGITS]


def send_test(session: Session, actor: str, template: str, channel: str, locale: str, *,
              env: Mapping[str, str] | None = None, batch: str | None = None) -> list[TestSendResult]:
    """Send ``template`` to every seed recipient with an address for ``channel``; audited, never a touch. The audit
    row keeps each recipient's result (masked), which ``sent_batch`` reads back by ``batch``."""
    if channel not in SEED_CHANNELS:
        raise SeedListError("%(field)s: this value cannot be used.", words={"field": "Channel"})
    if locale not in LOCALES:
        raise SeedListError("%(field)s: this value cannot be used.", words={"field": "Language"})
    if template not in templates():
        raise SeedListError("Unknown template %(name)s.", name=template)
    if not any(template_file(templates_in_force(), template, channel, loc).is_file() for loc in LOCALES):
        # Any template may be chosen with any channel on the page; one it has no file for is the choice's
        # fault, said in words (the renderer's own message is English and names files).
        raise SeedListError("This template has no %(channel)s message: choose another channel.",
                            words=_channel(channel))
    try:
        content = render_test(template, channel, locale)
    except RenderError as exc:
        # The template's own error names its file and line; it stays as written.
        raise SeedListError("The template could not be rendered: %(detail)s", detail=str(exc)) from None
    recipients = [r for r in seed_list(session) if r.address(channel)]
    if not recipients:
        raise SeedListError("no seed recipient has an address for %(channel)s", words=_channel(channel))
    batch = batch or new_batch()
    messages = [OutboundMessage(touch_id=0, touch_key=f"test-{batch}-{i}", to=r.address(channel) or "",
                                content=content) for i, r in enumerate(recipients)]
    try:
        sent = asyncio.run(_send(channel, messages, env))
    except ChannelNotConfigured as exc:
        settings = ", ".join(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", str(exc))) or str(exc)
        raise SeedListError("%(channel)s is not configured on this server: set %(settings)s",
                            words=_channel(channel), settings=settings) from None
    results = [TestSendResult(r.name, s.ok, (s.provider_message_id or "") if s.ok else
                              (s.error_reason or s.error_code or "failed"))
               for r, s in zip(recipients, sent, strict=True)]
    audit(session, actor, "test_send", "template", template[:64],
          {"channel": channel, "locale": locale, "batch": batch,
           "recipients": [r.masked() for r in recipients], "sent": sum(r.ok for r in results),
           "results": [[r.recipient, r.ok, mask_text(r.detail)[:MAX_DETAIL]] for r in results]})
    return results


def sent_batch(session: Session, actor: str, batch: str) -> tuple[dict[str, str], list[TestSendResult]] | None:
    """What ``actor``'s test send ``batch`` was (template, channel, language) and its results, from its audit row;
    None if none of their recent sends is that one. The page shows a send's results from here, not as the answer to
    its form, so reloading the page or coming back to it sends nothing again."""
    rows = session.exec(select(AuditLog).where(AuditLog.action == "test_send", AuditLog.actor == actor)
                        .order_by(col(AuditLog.id).desc()).limit(RECENT_SENDS))
    for row in rows:
        detail = row.detail or {}
        if detail.get("batch") == batch:
            form = {"template": row.target_id, "channel": str(detail.get("channel", "")),
                    "locale": str(detail.get("locale", ""))}
            return form, [TestSendResult(str(name), bool(ok), str(why)) for name, ok, why in detail.get("results", [])]
    return None
