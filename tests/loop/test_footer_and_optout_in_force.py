"""The marketing SMS footer and the opt-out words are delivery settings like the rest of
``config/delivery.yaml``: edited in the file, they change nothing a customer receives (dispatch through the
real Twilio adapter, the journey page's preview, ``journeys preview``) nor which reply withdraws consent,
until someone other than the submitter approves them; a rollback brings the earlier ones back.
On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from channels.sms_twilio import TwilioSmsAdapter
from console.ops_preview import previews
from engine.cli import build_app
from engine.language.journey_registry import load_in_force
from engine.language.journey_review import versions
from engine.sending.dispatch import make_dispatcher
from standins.twilio_api import TwilioStandin
from store.db import get_engine, session_scope
from store.models import Customer
from tests.console.test_review import offer, plan_day
from tests.dispatch_support import dispatch_until_idle
from tests.loop.test_event_sources import sms_in
from tests.loop.test_receipts import TWILIO_TOKEN
from tests.plan_support import Book, utc
from tests.review_support import approve, config_copy, installed, roll_back, set_setting, submit

FROM = "+15005550006"
SHIPPED, EDITED = "回复TD退订", "拒收请回复QUIT"


def sent_sms(book: Book, day: int) -> str:
    """Plan day ``day`` and send it as the service does (``make_dispatcher``, the real Twilio adapter):
    the one SMS body the stand-in took."""
    plan_day(book, day)
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url)
        dispatcher = make_dispatcher(get_engine(book.url), {"sms": adapter}, worker_id="w")
        # 20:00 in Shanghai, the day's touch due: later, in the quiet hours there, dispatch would hold it.
        dispatch_until_idle(dispatcher, utc(2027, 3, day, 12))
        [body] = [entry.detail["body"] for entry in standin.log.entries]
        return str(body)


def previewed(book: Book) -> tuple[str, str]:
    """The zh-CN SMS of the journey page's preview and of ``journeys preview``."""
    with session_scope(book.url) as session:
        journey = load_in_force(session).journeys["offer"].journey
    page = next(p.text for p in previews(journey) if p.channel == "sms" and p.locale == "zh-CN")
    printed = CliRunner().invoke(build_app(), ["preview", "msg", "--customer", "S1", "--channel", "sms",
                                               "--locale", "zh-CN"])
    assert printed.exit_code == 0, printed.output
    return page, printed.stdout


def withdraws(book: Book, word: str, n: int) -> bool:
    """Whether ``word``, texted by a new customer, withdraws their SMS consent."""
    phone = f"+86139000{n:05d}"
    customer_id = book.customer(external_id=f"R{n}", tier="gold", phone=phone)
    assert sms_in(book, phone, word, f"SMin{n}") == 200
    with Session(get_engine(book.url)) as session:
        row = session.get(Customer, customer_id)
        assert row is not None
        return not row.consent_sms


@pytest.fixture
def config(book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    config = config_copy(tmp_path, monkeypatch)
    set_setting(config / "delivery.yaml", "marketing_cap", "50")  # a touch a day, as found at install
    return config


def test_an_edited_footer_and_opt_out_words_wait_for_approval(book: Book, config: Path) -> None:
    book.journey("offer", offer("silver"))
    book.customer(external_id="S1", tier="silver", locale="zh-CN")
    meta = book.templates / "msg" / "meta.yaml"
    meta.write_text(meta.read_text(encoding="utf-8").replace("category: service", "category: marketing"),
                    encoding="utf-8")
    for locale in ("zh-CN", "en"):
        (book.templates / "msg" / f"sms.{locale}.j2").write_text("本周礼包已上线。", encoding="utf-8")
    installed(book.url)
    assert sent_sms(book, 1).endswith(SHIPPED)
    assert all(SHIPPED in text for text in previewed(book))
    assert withdraws(book, "TD", 1)

    delivery = config / "delivery.yaml"
    set_setting(delivery, "marketing_sms_footer", EDITED)
    set_setting(delivery, "opt_out_keywords", "[QUIT, 退订]")
    pending = submit(book.url, "setting:delivery.yaml")
    body = sent_sms(book, 2)
    assert body.endswith(SHIPPED) and EDITED not in body  # pending: customers get the approved footer
    assert all(SHIPPED in text and EDITED not in text for text in previewed(book))
    assert not withdraws(book, "QUIT", 2)  # not an opt-out word until approved
    assert withdraws(book, "TD", 3)  # still one

    approve(book.url, pending)
    assert sent_sms(book, 3).endswith(EDITED)
    assert all(EDITED in text for text in previewed(book))
    assert withdraws(book, "QUIT", 4)
    assert not withdraws(book, "TD", 5)

    with session_scope(book.url) as session:
        [first] = [v for v in versions(session, "setting:delivery.yaml") if v.id != pending]
    roll_back(book.url, first.id)
    assert sent_sms(book, 4).endswith(SHIPPED)
    assert withdraws(book, "TD", 6)
    assert not withdraws(book, "QUIT", 7)
