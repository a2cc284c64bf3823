"""Issue 19 delivery rules: channels by engagement level, quiet hours per channel, caps per channel
and per journey at sending, and the forms' validation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert
from typer.testing import CliRunner

from channels.push_jpush import JPushAdapter
from engine.cli import build_app
from engine.language.engagement import ACTIVITY_PARTS, activity_score, engagement_facts, level
from engine.language.journey_model import Cap, Journey
from engine.language.settings_model import DeliveryConfig, QuietHours
from engine.planning.delivery_rules import MOVED_QUIET, Reach, Wanted, decide
from engine.sending.dispatch import Dispatcher
from engine.sending.journey_rules import JourneyRules
from standins.jpush_api import JPushStandin
from store.clock import utcnow
from store.db import make_engine
from store.models import Customer, Touch
from tests.dispatch_support import PlainRenderer, dispatch_until_idle
from tests.events_support import crm_case_journey
from tests.plan_support import utc
from tests.standin_support import serving

ROOT = Path(__file__).resolve().parents[2]
ALL = {"sms": True, "wechat": True, "email": True, "push": True}
REACH = Reach("Asia/Shanghai", dict(ALL), dict(ALL), dict(ALL))


def wanted(engagement: tuple[float, float | None] | None, channels: list[str] | None = None,
           at: object = None, category: str = "marketing") -> Wanted:
    return Wanted(1, "j", "v", "s", "o", category, False, 50, channels or [], "t", at or utc(2026, 11, 23, 2, 0),  # type: ignore[arg-type]
                  engagement=engagement)


@pytest.mark.parametrize(("facts", "expected"), [
    ({"customer.attributes.logins_90d": 30, "customer.attributes.session_minutes_90d": 300}, ("push", ["sms"])),
    ({"customer.attributes.logins_90d": 2}, ("sms", ["wechat"])),
    ({"customer.attributes.logins_90d": 30, "customer.churn_risk": 0.8}, ("sms", ["wechat"])),
])
def test_by_engagement_takes_the_list_of_the_customer_s_level(facts: dict[str, float], expected: object) -> None:
    [decision], _ = decide([wanted(engagement_facts(facts))], REACH, DeliveryConfig())
    assert (decision.channel, decision.fallback_channels) == expected


@given(st.dictionaries(st.sampled_from(sorted(ACTIVITY_PARTS)), st.floats(-10, 1e6) | st.integers(-5, 10**6)),
       st.none() | st.floats(0, 1))
def test_engagement_level_follows_activity_and_churn(attributes: dict[str, float], churn: float | None) -> None:
    score = activity_score(attributes)
    assert 0 <= score <= 100
    more = {name: (value if isinstance(value, int | float) and value > 0 else 0) * 2 + 1
            for name, value in {**dict.fromkeys(ACTIVITY_PARTS, 0), **attributes}.items()}
    assert activity_score(more) >= score  # more activity never lowers the score
    found = level(score, churn, 50, 0.5)
    assert found == ("at_risk" if churn is not None and churn >= 0.5 else "active" if score >= 50 else "basic")


def test_quiet_hours_per_channel() -> None:
    config = DeliveryConfig(channel_quiet_hours={"push": QuietHours(start="20:00", end="09:00")})
    evening = utc(2026, 11, 23, 12, 30)  # 20:30 in Shanghai
    decisions, _ = decide([wanted(None, ["push"], evening), wanted(None, ["sms"], evening, "service")],
                          REACH, config)
    push, sms = sorted(decisions, key=lambda d: d.channel)
    assert (push.moved_by, push.due_at) == (MOVED_QUIET, utc(2026, 11, 24, 1, 0))  # 09:00 the next morning
    assert push.reason.startswith("quiet hours 20:00-09:00 (Asia/Shanghai)")
    assert (sms.moved_by, sms.due_at) == (None, evening)  # 21:00-08:00 for SMS: 20:30 stays


@pytest.fixture
def jpush() -> Iterator[JPushStandin]:
    yield from serving(JPushStandin())


def test_a_channel_cap_and_a_journey_cap_drop_at_sending(db_url: str, jpush: JPushStandin) -> None:
    engine = make_engine(db_url)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(Customer.__table__), [  # type: ignore[attr-defined]
            {"external_id": f"C{i}", "name": f"客户{i}", "phone": f"+8613800000{i:03d}", "consent_sms": True,
             "push_registration_id": f"rid{i}", "consent_push": True, "preferred_channels": [], "attributes": {},
             "created_at": now, "updated_at": now} for i in (1, 2)])
        ids = conn.exec_driver_sql("SELECT id FROM customer ORDER BY id").scalars().all()

        def touch(cid: int, key: str, journey: str, channel: str, minutes: int,
                  category: str = "marketing") -> dict[str, object]:
            due = now - timedelta(minutes=minutes)
            return {"key": key, "customer_id": cid, "journey_id": journey, "journey_version": "v", "step_id": "s",
                    "occurrence": key, "category": category, "channel": channel, "fallback_channels": [],
                    "template": "t", "planned_for": due, "due_at": due, "created_at": now, "status": "planned",
                    "attempts": 0, "urgent": False}

        conn.execute(insert(Touch.__table__), [  # type: ignore[attr-defined]
            touch(ids[0], "a1", "promo", "push", 30), touch(ids[0], "a2", "promo2", "push", 20),
            touch(ids[1], "b1", "care", "push", 30, "service"), touch(ids[1], "b2", "care", "push", 20, "service"),
        ])
    journeys = JourneyRules({}, {"care": (1, timedelta(days=30))})
    adapter = JPushAdapter("standinappkey0000000001", "standin-master-secret", api_base=jpush.base_url)
    dispatcher = Dispatcher(engine, {"push": adapter}, PlainRenderer(), worker_id="w",
                            channel_caps={"push": (1, timedelta(days=3))}, journey_rules=lambda: journeys)

    dispatch_until_idle(dispatcher)
    with engine.connect() as conn:
        rows = {r.key: (r.status, r.error_reason) for r in conn.exec_driver_sql("SELECT * FROM touch")}
    assert rows == {
        "a1": ("sent", None), "a2": ("dropped", "channel_cap: push cap 1 per 3d reached when sending"),
        "b1": ("sent", None), "b2": ("dropped", "journey_cap: journey care cap 1 per 30d reached when sending"),
    }
    assert len(jpush.log) == 2
    engine.dispose()


def test_the_journey_cap_is_read_from_the_file() -> None:
    journey = Journey.model_validate({
        "id": "j", "name": "J", "category": "service", "entry": {"event": {"type": "claim.filed"}},
        "cap": {"count": 1, "window": "30d"},
        "steps": [{"id": "a", "webhook": {"target": "crm", "template": "crm_case_opened"}}]})
    assert journey.cap == Cap(count=1, window="30d")
    rules = JourneyRules.of([journey])
    assert rules.caps == {"j": (1, timedelta(days=30))} and rules.webhook_targets == {("j", "a"): "crm"}


@pytest.mark.parametrize(("target", "channels", "template", "problem"), [
    ("crm", "[push, sms]", "silver_weekly_push", None),
    ("cmr", "[push, sms]", "silver_weekly_push", "unknown webhook target 'cmr' (did you mean 'crm'?)"),
    ("crm", "[push, sms]", "renewal_second_reminder",
     "template 'renewal_second_reminder' has no push version for zh-CN"),
    ("crm", "by_engagement", "renewal_reminder", "template 'renewal_reminder' has no push version for zh-CN"),
    ("crm", "by_engagemnt", "silver_weekly_push", "by_engagement"),
])
def test_validate_checks_the_new_forms(tmp_path: Path, target: str, channels: str, template: str,
                                       problem: str | None) -> None:
    path = tmp_path / "issue19-forms.yaml"
    path.write_text(crm_case_journey("issue19-forms", "Forms", "marketing", target=target, channels=channels,
                                     template=template), encoding="utf-8")
    result = CliRunner().invoke(build_app(), ["validate", str(path)])
    if problem is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1 and problem in result.output, result.output
        assert f"{path.name}:" in result.output
