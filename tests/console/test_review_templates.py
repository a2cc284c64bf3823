"""Review before going live for templates: a changed marketing template is not sent until someone other
than its submitter approves it (dispatch keeps sending the approved version to the SMS stand-in), a
rollback brings the earlier wording back, a template only service journeys send goes in force at once,
and every step is audited. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import col, select
from typer.testing import CliRunner

from channels.sms_twilio import TwilioSmsAdapter
from console import review
from console.ops_preview import previews
from console.seed_send import add_recipient, send_test
from engine.cli import build_app
from engine.language.journey_registry import load_delivery_config, load_in_force
from engine.language.journey_review import APPROVED, PENDING, ReviewError, versions
from engine.language.settings_review import SETTING
from engine.language.template_review import TEMPLATE, folder_files, folder_source, subject
from engine.sending.dispatch import Dispatcher, make_dispatcher
from engine.sending.render_batch import StoreRenderer
from standins.twilio_api import TwilioStandin
from store.db import get_engine, session_scope
from store.models import AuditLog, JourneyVersion
from tests.console.test_review import offer, people, plan_day, users
from tests.dispatch_support import dispatch_until_idle
from tests.plan_support import Book, utc
from tests.review_support import own_tiers

ROOT = Path(__file__).resolve().parents[2]

FROM = "+15005550006"


def sms_text(book: Book, words: str) -> None:
    for locale in ("zh-CN", "en"):
        (book.templates / "msg" / f"sms.{locale}.j2").write_text(f"{words} {{{{ customer.name }}}}", encoding="utf-8")


def send_day(book: Book, day: int, batch_size: int = 100) -> list[str]:
    """Plan day ``day`` and dispatch it through the real Twilio adapter: the SMS bodies the stand-in took."""
    plan_day(book, day)
    with TwilioStandin(callbacks=False) as standin:
        assert isinstance(standin, TwilioStandin)
        adapter = TwilioSmsAdapter(standin.account_sid, standin.auth_token, FROM, api_base=standin.base_url)
        dispatcher = Dispatcher(get_engine(book.url), {"sms": adapter}, StoreRenderer(), worker_id="w",
                                batch_size=batch_size, marketing_cap=50)  # as plan_day: one offer a day
        dispatch_until_idle(dispatcher, utc(2027, 3, day, 23))
        return [entry.detail["body"] for entry in standin.log.entries]


def template_versions(book: Book) -> list[review.VersionInfo]:
    with session_scope(book.url) as session:
        return versions(session, subject("msg"))


def test_a_changed_marketing_template_is_sent_only_once_approved_and_rollback_restores_it(book: Book) -> None:
    users(book.url)
    book.journey("offer", offer("silver"))
    people(book)
    sms_text(book, "Spring offer")
    [first] = send_day(book, 1)
    assert first.startswith("Spring offer")  # the shipped templates count as approved at install

    sms_text(book, "Summer offer")
    [kept] = send_day(book, 2)
    assert kept.startswith("Spring offer")  # landed pending: the approved wording is still what is sent
    [pending] = [v for v in template_versions(book) if v.state == PENDING]
    assert (pending.kind, pending.submitted_by, pending.in_force) == (TEMPLATE, "files", False)

    with session_scope(book.url) as session:
        [signed] = [v for v in review.submit_changes(session, "olga") if v.kind == TEMPLATE]
        assert signed.id == pending.id and signed.submitted_by == "olga"
    with session_scope(book.url) as session:  # as the page opens it: the submission committed
        page = review.review_page(session, pending.id)
        assert "-Spring offer {{ customer.name }}" in page.change.diff
        assert "+Summer offer {{ customer.name }}" in page.change.diff
        texts = {(p.channel, p.locale): p.text for p in page.previews}
        assert texts[("sms", "zh-CN")].startswith("Summer offer 王小明")
        assert texts[("sms", "en")] == "Summer offer Alex Wang"
    with session_scope(book.url) as session, pytest.raises(ReviewError) as own:
        review.approve(session, "olga", pending.id, "mine")
    assert own.value.code == "no_right"
    with session_scope(book.url) as session:
        row = session.get(JourneyVersion, pending.id)
        assert row is not None
        row.submitted_by = "carol"  # a compliance user's own change
    with session_scope(book.url) as session, pytest.raises(ReviewError) as own:
        review.approve(session, "carol", pending.id, "my own wording")
    assert own.value.code == "own_change"
    [still] = send_day(book, 3)
    assert still.startswith("Spring offer")

    with session_scope(book.url) as session:
        review.approve(session, "adam", pending.id, "wording checked")
    [approved] = send_day(book, 4)
    assert approved.startswith("Summer offer")

    first_id = next(v.id for v in template_versions(book) if v.id != pending.id)
    with session_scope(book.url) as session:
        review.roll_back(session, "adam", first_id, "summer offer withdrawn")
    [restored] = send_day(book, 5)
    assert restored.startswith("Spring offer")
    assert {v.id: (v.state, v.in_force) for v in template_versions(book)} == {
        first_id: (APPROVED, True), pending.id: (APPROVED, False)}
    with session_scope(book.url) as session:
        audit = session.exec(select(AuditLog.actor, AuditLog.action).where(
            col(AuditLog.target_type) == "template_version",
            col(AuditLog.detail)["journey"].as_string() == "template:msg").order_by(col(AuditLog.id))).all()
    assert [tuple(a) for a in audit] == [
        ("files", "template_version_published"), ("files", "template_version_pending"),
        ("olga", "template_version_submitted"), ("adam", "template_version_approved"),
        ("adam", "template_version_rollback")]


def test_a_template_only_service_journeys_send_needs_no_review(book: Book) -> None:
    book.journey("care", offer("silver").replace("id: offer", "id: care").replace("marketing", "service"))
    people(book)
    sms_text(book, "Your policy")
    assert send_day(book, 1)[0].startswith("Your policy")
    sms_text(book, "Your cover")
    assert send_day(book, 2)[0].startswith("Your cover")
    assert {v.state for v in template_versions(book)} == {APPROVED}


def test_cli_lists_shows_and_approves_a_template_change(sqlite_book: Book) -> None:
    book = sqlite_book
    own_tiers(book.root, book.monkeypatch)
    users(book.url)
    book.journey("offer", offer("silver"))
    cli, runner = build_app(), CliRunner()
    assert runner.invoke(cli, ["review", "submit", "--as", "olga"]).exit_code == 0  # install: approved
    sms_text(book, "New words")
    assert runner.invoke(cli, ["review", "submit", "--as", "olga"]).exit_code == 0
    listed = runner.invoke(cli, ["review", "list", "--pending", "--journey", "template:msg"])
    assert listed.exit_code == 0 and "template:msg" in listed.stdout and "pending" in listed.stdout, listed.output
    with session_scope(book.url) as session:
        [pending] = [v for v in versions(session, subject("msg")) if v.state == PENDING]
    shown = runner.invoke(cli, ["review", "show", str(pending.id)])
    assert "+New words {{ customer.name }}" in shown.stdout and "New words Alex Wang" in shown.stdout, shown.output
    refused = runner.invoke(cli, ["review", "approve", str(pending.id), "--as", "olga", "-m", "ok"])
    assert refused.exit_code != 0
    approved = runner.invoke(cli, ["review", "approve", str(pending.id), "--as", "carol", "-m", "ok"])
    assert approved.exit_code == 0 and "is approved" in approved.stdout, approved.output


file_names = st.sampled_from(["meta.yaml", "sms.zh-CN.j2", "sms.en.j2", "email.en.j2", "wechat.en.yaml"])
# No carriage returns: reading a file in text mode turns them into newlines, as it does for any template.
contents = st.text(st.characters(codec="utf-8", blacklist_characters="\r"), max_size=60)


@given(st.dictionaries(file_names, contents, min_size=1))
def test_a_stored_template_version_gives_back_its_files_exactly(tmp_path_factory: pytest.TempPathFactory,
                                                                 files: dict[str, str]) -> None:
    folder: Path = tmp_path_factory.mktemp("tpl")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8", newline="")
    assert folder_files(folder_source(folder)) == files


def test_dispatch_loads_the_templates_in_force_once_per_run(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.language import template_review

    calls: list[datetime] = []
    real = template_review.in_force_root

    def counted(*args: object, **kwargs: object) -> Path:
        calls.append(datetime.now())
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(template_review, "in_force_root", counted)
    book.journey("offer", offer("silver"))
    for n in range(5):
        book.customer(external_id=f"S{n}", tier="silver")
    assert len(send_day(book, 1, batch_size=2)) == 5  # three batches
    assert len(calls) == 1


def test_a_changed_delivery_setting_is_in_force_only_once_approved(
        book: Book, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users(book.url)
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    shipped = load_delivery_config().marketing_cap

    def cap_in_force() -> int:
        return make_dispatcher(get_engine(book.url), {}).marketing_cap

    assert cap_in_force() == shipped  # the shipped settings count as approved at install
    delivery = config / "delivery.yaml"
    delivery.write_text(re.sub(r"(?m)^marketing_cap:.*$", f"marketing_cap: {shipped + 3}",
                               delivery.read_text(encoding="utf-8")), encoding="utf-8")
    assert cap_in_force() == shipped  # landed pending
    with session_scope(book.url) as session:
        [pending] = [v for v in review.submit_changes(session, "carol") if v.journey_id == "setting:delivery.yaml"]
        assert pending.kind == SETTING and pending.submitted_by == "carol"
        diff = review.review_page(session, pending.id).change.diff
        assert f"+marketing_cap: {shipped + 3}" in diff and f"-marketing_cap: {shipped}" in diff
    with session_scope(book.url) as session, pytest.raises(ReviewError) as own:
        review.approve(session, "carol", pending.id, "my own cap")
    assert own.value.code == "own_change"
    assert cap_in_force() == shipped
    with session_scope(book.url) as session:
        review.approve(session, "adam", pending.id, "three more a week agreed")
    assert cap_in_force() == shipped + 3
    with session_scope(book.url) as session:
        first = next(v for v in versions(session, "setting:delivery.yaml") if v.id != pending.id)
        review.roll_back(session, "adam", first.id, "back to the programme's cap")
    assert cap_in_force() == shipped

    delivery.write_text("marketing_cap: [not a number]\n", encoding="utf-8")  # invalid: lands nothing
    assert cap_in_force() == shipped
    with session_scope(book.url) as session:
        assert len(versions(session, "setting:delivery.yaml")) == 2


def test_previews_and_test_sends_render_the_template_in_force(book: Book) -> None:
    """The journey page's preview, ``journeys preview`` and a test send show what customers get: a change
    awaiting review only on the review page, until it is approved."""
    users(book.url)
    book.journey("offer", offer("silver"))
    people(book)
    sms_text(book, "Spring offer")
    with session_scope(book.url) as session:
        add_recipient(session, "olga", "Staff phone", phone_text="+8613900001111")
    cli, runner = build_app(), CliRunner()

    def shown() -> list[str]:
        """The page's preview, the CLI's and the text a test send sent, each cut to its first two words."""
        with session_scope(book.url) as session:
            journey = load_in_force(session).journeys["offer"].journey
        page = next(p.text for p in previews(journey) if p.channel == "sms" and p.locale == "en")
        printed = runner.invoke(cli, ["preview", "msg", "--customer", "S1", "--channel", "sms", "--locale", "en"])
        assert printed.exit_code == 0, printed.output
        with TwilioStandin(callbacks=False) as standin, session_scope(book.url) as session:
            assert isinstance(standin, TwilioStandin)
            env = {"TWILIO_ACCOUNT_SID": standin.account_sid, "TWILIO_AUTH_TOKEN": standin.auth_token,
                   "TWILIO_FROM": FROM, "TWILIO_API_BASE": standin.base_url}
            [sent] = send_test(session, "olga", "msg", "sms", "en", env=env)
            assert sent.ok
            [body] = [entry.detail["body"] for entry in standin.log.entries]
        cli_text = next(line for line in printed.stdout.splitlines() if "offer" in line)
        return [" ".join(page.split()[:2]), " ".join(cli_text.split()[:2]), " ".join(body.split()[1:3])]

    assert shown() == ["Spring offer"] * 3  # the folders found at install count as approved
    sms_text(book, "Summer offer")
    assert shown() == ["Spring offer"] * 3  # landed pending
    [pending] = [v for v in template_versions(book) if v.state == PENDING]
    with session_scope(book.url) as session:
        page = review.review_page(session, pending.id)  # the pending version, rendered from its stored text
        assert {p.text.split()[0] for p in page.previews if p.channel == "sms"} == {"Summer"}
        review.approve(session, "adam", pending.id, "wording checked")
    assert shown() == ["Summer offer"] * 3
