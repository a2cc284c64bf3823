"""Marketing e-mail sent by dispatch carries the customer's signed opt-out link as List-Unsubscribe,
and RFC 8058's one-click POST to it (what a mailbox provider sends) opts the customer out."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import text

from channels.email_smtp import SmtpEmailAdapter, SmtpSettings
from channels.optout import PUBLIC_URL_ENV, SECRET_ENV, UNSUBSCRIBE_PATH
from engine.loop.receipts import handle_unsubscribe
from engine.sending.dispatch import Dispatcher
from standins.smtp_server import SmtpStandin
from store.db import make_engine
from tests.dispatch_support import PlainRenderer, daytime_zone, make_customers, make_touches


def test_marketing_mail_lists_a_one_click_link_that_opts_the_customer_out(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "test-secret-for-unsubscribe-links")
    monkeypatch.setenv(PUBLIC_URL_ENV, "https://journeys.example.com")
    engine = make_engine(db_url)
    ids = make_customers(engine, 2, timezone=daytime_zone())
    make_touches(engine, ids, channel="email")
    with engine.begin() as conn:
        conn.execute(text("UPDATE touch SET category = 'marketing' WHERE customer_id = :c"), {"c": ids[0]})
    with SmtpStandin() as server:
        adapter = SmtpEmailAdapter(SmtpSettings(server.host, server.port, starttls=False, timeout=5),
                                   "service@insurer.example.com")
        dispatcher = Dispatcher(engine, {"email": adapter}, PlainRenderer(), worker_id="w1")

        async def run() -> None:
            try:
                await dispatcher.run_until_idle()
            finally:
                await dispatcher.aclose()

        asyncio.run(run())
        received = {m.rcpt_tos[0]: m.message for m in server.messages}
    marketing, service = received["c0@example.com"], received["c1@example.com"]
    assert service["List-Unsubscribe"] is None
    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.fullmatch(rf"<https://journeys\.example\.com{UNSUBSCRIBE_PATH}([^>]+)>",
                         re.sub(r"\s", "", marketing["List-Unsubscribe"]))
    assert found is not None
    status, _ = handle_unsubscribe("POST", found.group(1), db_url=db_url)
    assert status == 200
    with engine.connect() as conn:
        consent: dict[int, object] = dict(conn.execute(text("SELECT id, consent_email FROM customer")).all())
    assert (bool(consent[ids[0]]), bool(consent[ids[1]])) == (False, True)
    engine.dispose()
