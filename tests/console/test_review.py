"""Review before going live: a changed marketing journey is not in force until someone other than its
submitter approves it (the planner plans from the approved version meanwhile), a rollback brings an
earlier version back in one step, and every step is in the audit log. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session, SQLModel, col, select
from typer.testing import CliRunner

from console import review
from console.auth import create_user
from console.ops_journeys import PENDING_REVIEW, REVIEW_REJECTED, journey_rows
from engine.cli import build_app
from engine.language.journey_registry import load_delivery_config, load_in_force
from engine.language.journey_review import (
    APPROVED,
    PENDING,
    REJECTED,
    ReviewError,
    decide,
    land,
    rollback,
    versions,
)
from engine.language.validation import validate
from engine.planning.planner import plan
from store.db import get_engine, make_engine, session_scope
from store.migrate import downgrade, upgrade
from store.models import AuditLog, Customer, JourneyVersion, Touch
from tests.plan_support import Book, utc
from tests.review_support import own_tiers

ROOT = Path(__file__).resolve().parents[2]

OFFER = """
    id: offer
    name: Daily offer
    category: marketing
    priority: 20
    audience: {{tiers: [{tier}]}}
    entry: {{schedule: {{cron: "0 10 * * *"}}}}
    steps:
      - id: push
        send: {{channels: [sms], template: msg}}
"""


def offer(tier: str) -> str:
    return OFFER.format(tier=tier)


def people(book: Book) -> None:
    book.customer(external_id="S1", tier="silver")
    book.customer(external_id="G1", tier="gold")


def touched_on(book: Book, day: date) -> set[str]:
    """External ids of the customers the planner gave a touch planned on ``day`` (UTC)."""
    with Session(get_engine(book.url)) as session:
        rows = session.exec(
            select(Customer.external_id, Touch.planned_for).join(Touch, col(Touch.customer_id) == col(Customer.id))
        ).all()
    return {external_id for external_id, planned_for in rows if planned_for.date() == day}


def plan_day(book: Book, day: int) -> set[str]:
    # The shipped cap (2 marketing touches a week) would hide what each version plans from day 3 on.
    delivery = load_delivery_config().model_copy(update={"marketing_cap": 50})
    plan(utc(2027, 3, day, 12), utc(2027, 3, day), url=book.url, delivery=delivery)
    return touched_on(book, date(2027, 3, day))


def users(url: str) -> None:
    with session_scope(url) as session:
        for name, role in (("olga", "ops"), ("carol", "compliance"), ("adam", "admin"), ("ann", "agent")):
            create_user(session, name, "long-enough-1", role)


def one(session: Session, state: str) -> JourneyVersion:
    return session.exec(select(JourneyVersion).where(JourneyVersion.review_state == state)).one()


def test_a_change_waits_for_approval_and_rollback_restores_the_earlier_version(book: Book) -> None:
    users(book.url)
    book.journey("offer", offer("silver"))
    people(book)
    assert plan_day(book, 1) == {"S1"}  # the shipped programme: approved at first start

    book.journey("offer", offer("gold"))
    with session_scope(book.url) as session:
        [pending] = review.submit_changes(session, "olga")
    assert (pending.state, pending.submitted_by, pending.in_force) == (PENDING, "olga", False)
    assert plan_day(book, 2) == {"S1"}  # still the approved version: gold customers get nothing

    with session_scope(book.url) as session, pytest.raises(ReviewError) as own:
        review.approve(session, "olga", pending.id, "mine, looks fine")
    assert own.value.code == "no_right"  # ops cannot approve at all
    with session_scope(book.url) as session:
        adam_change = session.get(JourneyVersion, pending.id)
        assert adam_change is not None
        adam_change.submitted_by = "adam"  # an admin's own change: admins hold the approve right
    with session_scope(book.url) as session, pytest.raises(ReviewError) as own:
        review.approve(session, "adam", pending.id, "my own change")
    assert own.value.code == "own_change"
    with session_scope(book.url) as session, pytest.raises(ReviewError) as silent:
        review.approve(session, "carol", pending.id, "   ")
    assert silent.value.code == "comment_required"
    assert plan_day(book, 3) == {"S1"}  # refusals changed nothing

    with session_scope(book.url) as session:
        review.approve(session, "carol", pending.id, "wording and audience checked")
    assert plan_day(book, 4) == {"G1"}  # the approved change is in force

    with session_scope(book.url) as session:
        first = next(v for v in versions(session, "offer") if v.id != pending.id)
        review.roll_back(session, "carol", first.id, "gold offer paused")
    assert plan_day(book, 5) == {"S1"}  # rolled back to the first version in one step
    with session_scope(book.url) as session:
        states = {v.id: (v.state, v.in_force) for v in versions(session, "offer")}
        assert states == {first.id: (APPROVED, True), pending.id: (APPROVED, False)}
        with pytest.raises(ReviewError) as again:
            review.roll_back(session, "carol", first.id, "twice")
        assert again.value.code == "already_in_force"
        audit = session.exec(select(AuditLog.actor, AuditLog.action).where(
            col(AuditLog.action).startswith("journey_version")).order_by(col(AuditLog.id))).all()
    assert [tuple(a) for a in audit] == [
        ("files", "journey_version_published"), ("olga", "journey_version_pending"),
        ("carol", "journey_version_approved"), ("carol", "journey_version_rollback")]


def test_a_rejected_change_never_goes_in_force_and_service_journeys_need_no_review(book: Book) -> None:
    users(book.url)
    book.journey("offer", offer("silver"))
    book.journey("care", offer("gold").replace("id: offer", "id: care").replace("marketing", "service"))
    people(book)
    assert plan_day(book, 1) == {"S1", "G1"}

    book.journey("offer", offer("gold"))
    book.journey("care", offer("silver").replace("id: offer", "id: care").replace("marketing", "service"))
    with Session(get_engine(book.url)) as session:
        in_force = load_in_force(session)  # what the planner does: lands the changes unsigned
        session.commit()
        assert set(in_force.held) == {"offer"}  # the service change went in force at once
        pending = one(session, PENDING)
        assert pending.submitted_by == "files"
        rows = {r.id: r for r in journey_rows(session)}
        assert rows["offer"].state == PENDING_REVIEW and rows["offer"].in_force_version is not None
        assert pending.id is not None
        review.reject(session, "carol", pending.id, "claims a discount we do not offer")
        session.commit()
        assert one(session, REJECTED).id == pending.id
        assert {r.id: r for r in journey_rows(session)}["offer"].state == REVIEW_REJECTED
    assert plan_day(book, 2) == {"S1"}  # offer: silver (kept), care: silver (new, no review)
    with session_scope(book.url) as session, pytest.raises(ReviewError) as late:
        review.approve(session, "carol", pending.id, "changed my mind")
    assert late.value.code == "not_pending"


def test_a_marketing_journey_moved_to_service_still_needs_review(book: Book) -> None:
    users(book.url)
    book.journey("offer", offer("silver"))
    people(book)
    assert plan_day(book, 1) == {"S1"}
    book.journey("offer", offer("gold").replace("marketing", "service"))
    assert plan_day(book, 2) == {"S1"}


def test_cli_verbs_call_the_same_functions(sqlite_book: Book) -> None:
    book = sqlite_book
    own_tiers(book.root, book.monkeypatch)
    users(book.url)
    book.journey("offer", offer("silver"))
    cli = build_app()
    runner = CliRunner()
    assert runner.invoke(cli, ["review", "submit", "--as", "olga"]).exit_code == 0  # first start: approved
    book.journey("offer", offer("gold"))
    submitted = runner.invoke(cli, ["review", "submit", "--as", "olga"])
    assert submitted.exit_code == 0 and "pending" in submitted.stdout, submitted.output
    listed = runner.invoke(cli, ["review", "list", "--pending", "--json"])
    [row] = json.loads(listed.stdout)
    shown = runner.invoke(cli, ["review", "show", str(row["id"]), "--json"])
    detail = json.loads(shown.stdout)
    assert "-audience: {tiers: [silver]}" in detail["diff"] and "+audience: {tiers: [gold]}" in detail["diff"]
    assert detail["messages"] and all(m["error"] is None for m in detail["messages"])
    refused = runner.invoke(cli, ["review", "approve", str(row["id"]), "--as", "ann", "-m", "ok"])
    assert refused.exit_code != 0 and "approve right" in refused.output
    approved = runner.invoke(cli, ["review", "approve", str(row["id"]), "--as", "carol", "-m", "ok"])
    assert approved.exit_code == 0 and "is approved" in approved.stdout, approved.output
    first = next(v for v in json.loads(runner.invoke(cli, ["review", "list", "--journey", "offer", "--json"]).stdout)
                 if v["id"] != row["id"])
    back = runner.invoke(cli, ["review", "rollback", str(first["id"]), "--as", "carol", "-m", "paused"])
    assert back.exit_code == 0, back.output
    final = {v["id"]: v["in_force"] for v in json.loads(
        runner.invoke(cli, ["review", "list", "--journey", "offer", "--json"]).stdout)}
    assert final == {first["id"]: True, row["id"]: False}


# --- the review rules against a model -------------------------------------------------------------

REVIEWERS = ("carol", "adam")  # compliance and admin: both hold the approve right
AUTHORS = ("files", "adam")  # adam both submits and reviews: the four-eyes rule must stop him
Step = tuple[str, int, str]  # (what, a version index or a pick among versions, who)
steps = st.lists(st.one_of(
    st.tuples(st.just("land"), st.integers(0, 3), st.sampled_from(AUTHORS)),
    st.tuples(st.sampled_from(["approve", "reject"]), st.integers(0, 3), st.sampled_from(REVIEWERS)),
    st.tuples(st.just("rollback"), st.integers(0, 3), st.just("carol")),
), min_size=4, max_size=16)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """Four valid versions of one marketing journey (validated once, outside the examples)."""
    from tests.plan_support import write_templates

    root = tmp_path_factory.mktemp("variants")
    write_templates(root / "templates", ["msg"])
    out = []
    for k in range(4):
        folder = root / f"v{k}"
        folder.mkdir()
        (folder / "offer.yaml").write_text(textwrap.dedent(offer("silver")).replace("priority: 20", f"priority: {k}"))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("JOURNEYS_TEMPLATES_DIR", str(root / "templates"))
            [loaded] = validate([folder], root / "templates").journeys
        out.append(loaded)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps)
def test_review_steps_follow_the_model(script: list[Step], variants: list[Any], tmp_path: Path) -> None:
    """Whatever the order of landings, decisions and rollbacks: the version in force is the approved one
    put in force last, a pending version is never in force, and nobody decides on their own change."""
    url = f"sqlite:///{tmp_path / f'model-{uuid.uuid4().hex}.db'}"
    engine = make_engine(url)
    SQLModel.metadata.create_all(engine)
    model: dict[str, dict[str, Any]] = {}  # version → state, submitter
    order: list[str] = []  # versions in the order they went in force
    try:
        with Session(engine) as session:
            for what, n, who in script:
                if what == "land":
                    version = variants[n].version
                    land(session, [variants[n]], str, actor=who)
                    if version not in model:
                        state = APPROVED if not model else PENDING  # first start: approved
                        model[version] = {"state": state, "by": who, "id": None}
                        if state == APPROVED:
                            order.append(version)
                    elif who != "files" and model[version]["state"] == PENDING and model[version]["by"] == "files":
                        model[version]["by"] = who
                    continue
                known = session.exec(select(JourneyVersion).order_by(col(JourneyVersion.id))).all()
                if not known:
                    continue
                row = known[n % len(known)]
                assert row.id is not None
                expected = model[row.version]
                try:
                    if what == "rollback":
                        rollback(session, row.id, who, "back")
                    else:
                        decide(session, row.id, who, what == "approve", "checked")
                except ReviewError as exc:
                    if what == "rollback":
                        assert exc.code == ("not_approved" if expected["state"] != APPROVED else "already_in_force")
                        assert expected["state"] != APPROVED or order[-1] == row.version
                    else:
                        assert exc.code == ("not_pending" if expected["state"] != PENDING else "own_change")
                        assert expected["state"] != PENDING or expected["by"] == who
                    continue
                if what == "rollback":
                    assert expected["state"] == APPROVED and order[-1] != row.version
                    order.append(row.version)
                else:
                    assert expected["state"] == PENDING and expected["by"] != who
                    expected["state"] = APPROVED if what == "approve" else REJECTED
                    if what == "approve":
                        order.append(row.version)
                in_force = {v.version for v in versions(session) if v.in_force}
                assert in_force == {order[-1]}
                assert all(v.state == model[v.version]["state"] for v in versions(session))
            session.commit()
    finally:
        engine.dispose()


def test_versions_stored_before_review_count_as_approved(any_db_url: str) -> None:
    upgrade(any_db_url, "0007")
    engine = make_engine(any_db_url)
    try:
        with engine.begin() as conn:
            for version, at in (("old", "2026-01-01 00:00:00"), ("new", "2026-02-01 00:00:00")):
                conn.execute(text("INSERT INTO journey_version (journey_id, version, path, source, published_at) "
                                  "VALUES ('offer', :v, 'offer.yaml', 'id: offer', :at)"), {"v": version, "at": at})
        upgrade(any_db_url)
        with Session(engine) as session:
            assert [(v.version, v.state, v.in_force) for v in versions(session)] == [
                ("new", APPROVED, True), ("old", APPROVED, False)]
        downgrade(any_db_url, "0007")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM journey_version")).scalar() == 2
    finally:
        engine.dispose()


def test_an_invalid_review_setting_holds_every_change_and_says_where(book: Book, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "review.yaml").write_text("categories:\n  marketing: true\n  servce: [no]\n", encoding="utf-8")
    book.monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    care = offer("silver").replace("id: offer", "id: care").replace("marketing", "service")
    book.journey("care", care)
    people(book)
    assert plan_day(book, 1) == {"S1"}
    book.journey("care", care.replace("[silver]", "[gold]"))
    assert plan_day(book, 2) == {"S1"}  # a service change waits too while the setting is broken
    assert any("review.yaml:3:" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
