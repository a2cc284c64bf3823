"""The review page renders a pending template as dispatch will send it: a marketing SMS ends with the
opt-out line of the delivery settings in force, not with a footer edited in config/delivery.yaml that
still waits for review. Before, the page's renderer read the footer from the file, so the preview
showed a line no customer would get. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from channels.sms_twilio import TwilioSmsAdapter
from console import review
from engine.language.template_review import TEMPLATE
from engine.sending.dispatch import make_dispatcher
from standins.twilio_api import TwilioStandin
from store.db import get_engine, session_scope
from tests.console.test_review import offer, plan_day, users
from tests.console.test_review_templates import FROM, ROOT, sms_text
from tests.dispatch_support import dispatch_until_idle
from tests.plan_support import Book, utc

PENDING_FOOTER = "回复N不再接收本类短信"


def test_the_preview_of_a_pending_template_ends_as_the_sent_message(
        book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    delivery = config / "delivery.yaml"
    found = re.search(r"(?m)^marketing_sms_footer: (.+)$", delivery.read_text(encoding="utf-8"))
    assert found is not None
    in_force = found.group(1)
    users(book.url)
    book.journey("offer", offer("silver"))
    book.customer(external_id="S1", tier="silver")
    meta = book.templates / "msg" / "meta.yaml"  # the renderer adds the opt-out line to marketing templates
    meta.write_text(meta.read_text(encoding="utf-8").replace("category: service", "category: marketing"),
                    encoding="utf-8")
    sms_text(book, "Spring offer")
    with session_scope(book.url) as session:
        review.submit_changes(session, "olga")  # first start: the files count as approved
    delivery.write_text(delivery.read_text(encoding="utf-8").replace(in_force, PENDING_FOOTER), encoding="utf-8")
    sms_text(book, "Summer offer")
    with session_scope(book.url) as session:
        submitted = review.submit_changes(session, "olga")
        assert {v.journey_id for v in submitted} == {"template:msg", "setting:delivery.yaml"}
        [pending] = [v for v in submitted if v.kind == TEMPLATE]
    with session_scope(book.url) as session:  # as the page opens it: the submission committed
        page = review.review_page(session, pending.id)
        [shown] = [p.text for p in page.previews if (p.channel, p.locale) == ("sms", "zh-CN")]
        review.approve(session, "adam", pending.id, "wording checked")  # the footer change stays pending
    plan_day(book, 1)
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url)
        # 20:00 in Shanghai, the day's touch due: later, in the quiet hours there, dispatch would hold it.
        dispatch_until_idle(make_dispatcher(get_engine(book.url), {"sms": adapter}), utc(2027, 3, 1, 12))
        [sent] = [entry.detail["body"] for entry in standin.log.entries]
    assert sent.startswith("Summer offer") and sent.endswith(in_force), sent
    assert shown.startswith("Summer offer") and shown.endswith(in_force), shown
    assert PENDING_FOOTER not in shown
