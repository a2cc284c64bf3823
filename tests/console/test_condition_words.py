"""Journey conditions in the reader's words on the ops pages (``console.condition_words``). Before, the
Chinese journey list, journey page, flow diagram and explain page showed a condition as its code
("customer.churn_risk ge 0.5", "event.data.nps le 6"); now they word it ("流失风险不低于0.5") and keep the
code in the tooltip for the people who write journey files.
"""

from __future__ import annotations

import html
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from console.condition_words import FIELD_WORDS, JOINERS, OPERATOR_WORDS
from console.i18n import Translator, catalog_messages
from engine.language.catalogue import CLAIM_FIELDS, CUSTOMER_FIELDS, EVENT_FIELDS, POLICY_FIELDS
from engine.language.journey_model import OPERATORS, Condition, Journey
from engine.language.journey_registry import validated_report
from tests.console.conftest import login
from tests.console.test_form_errors import set_locale

LATIN = re.compile(r"[A-Za-z_]{2,}|\d+[wdhm]\b")


def _conditions(journey: Journey) -> list[Condition]:
    found = [journey.audience.when, journey.entry.event.when if journey.entry.event else None,
             journey.goal.when if journey.goal else None]
    for step in journey.steps:
        found += [c.when for c in step.branch.cases] if step.branch else []
        found.append(step.wait_for.when if step.wait_for else None)
    return [c for c in found if c is not None]


def test_every_field_and_operator_has_words_in_both_languages() -> None:
    fields = {f"{scope}.{name}" for scope, table in (("customer", CUSTOMER_FIELDS), ("policy", POLICY_FIELDS),
                                                    ("claim", CLAIM_FIELDS), ("event", EVENT_FIELDS))
              for name in table}
    assert fields <= set(FIELD_WORDS), sorted(fields - set(FIELD_WORDS))
    assert set(OPERATORS) == set(OPERATOR_WORDS)
    zh, en = catalog_messages("zh-CN"), catalog_messages("en")
    for msgid in [*FIELD_WORDS.values(), *OPERATOR_WORDS.values(), *JOINERS.values(), "not (%(condition)s)"]:
        assert zh.get(msgid) and en.get(msgid), msgid
        assert not LATIN.search(re.sub(r"%\(\w+\)s|NPS", "", zh[msgid])), (msgid, zh[msgid])


def test_every_shipped_condition_reads_in_chinese_without_codes() -> None:
    zh = Translator("zh-CN")
    conditions = [c for j in validated_report().journeys for c in _conditions(j.journey)]
    assert len(conditions) >= 20
    for cond in conditions:
        words = zh.condition(cond)
        leftover = set(LATIN.findall(re.sub(r"NPS", "", words))) - _free_text(cond)
        assert not leftover, (cond.describe(), words)


def _free_text(cond: Condition) -> set[str]:
    """What a condition names as written: text it compares a reply with, and a customer attribute's own key
    and values (an open map: whatever the book's import gave)."""
    if cond.field is not None:
        values = {str(v) for v in (cond.value if isinstance(cond.value, list) else [cond.value])}
        if cond.field.startswith("customer.attributes."):
            return values | set(LATIN.findall(cond.field.removeprefix("customer.attributes.")))
        return values if cond.field == "event.data.text" else set()
    return set().union(*(_free_text(c) for c in [*(cond.all or cond.any or []), *([cond.not_] if cond.not_ else [])]))


def test_a_tree_reads_with_its_groups() -> None:
    cond = Condition.model_validate({"all": [
        {"field": "customer.tier", "op": "in", "value": ["gold", "diamond"]},
        {"any": [{"field": "customer.churn_risk", "op": "ge", "value": 0.5},
                 {"field": "customer.last_active_at", "op": "older_than", "value": "30d"}]},
        {"not": {"field": "event.data.channel", "op": "eq", "value": "sms"}}]})
    assert Translator("zh-CN").condition(cond) == \
        "等级为黄金、钻石之一 且 （流失风险不低于0.5 或 最近活跃在30天以前） 且 并非（渠道为短信）"
    assert Translator("en").condition(cond) == ("Tier is one of Gold, Diamond and (Churn risk at least 0.5 or "
                                                "Last active more than 30 days ago) and not (Channel is SMS)")


def test_a_time_zone_reads_as_where_its_clocks_are() -> None:
    cond = Condition.model_validate({"field": "customer.timezone", "op": "in",
                                     "value": ["Asia/Shanghai", "Asia/Hong_Kong"]})
    assert Translator("zh-CN").condition(cond) == "时区为中国（上海）时间、中国香港特别行政区时间之一"
    assert Translator("en").condition(cond) == "Time zone is one of China (Shanghai) Time, Hong Kong SAR China Time"


_VALUE = st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.lists(st.text(max_size=4), max_size=3))
_LEAF = st.builds(lambda f, op, v: {"field": f, "op": op, "value": v},
                  st.sampled_from([*FIELD_WORDS, "event.data.nps", "customer.attributes.vip"]),
                  st.sampled_from(OPERATORS), _VALUE)
_GROUP = st.sampled_from(["all", "any"])
_TREE = st.recursive(_LEAF, lambda kids: st.one_of(
    st.builds(lambda g, k: {g: k}, _GROUP, st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda k: {"not": k}, kids)), max_leaves=6)


@given(_TREE)
def test_any_condition_is_worded_without_error(tree: dict[str, Any]) -> None:
    try:
        cond = Condition.model_validate(tree)
    except ValueError:
        return  # not a condition a journey file may hold
    for locale in ("zh-CN", "en"):
        assert Translator(locale).condition(cond)


def test_the_chinese_journey_list_words_audiences_and_keeps_the_code_as_a_tooltip(client: TestClient,
                                                                                db_url: str) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/journeys").text
    shown = re.findall(r'data-k="audience-when" title="([^"]*)">([^<]*)<', page)
    with_when = [j.journey for j in validated_report().journeys if j.journey.audience.when is not None]
    assert len(shown) == len(with_when) > 0
    for code, words in shown:
        assert html.unescape(code) in {j.audience.when.describe() for j in with_when if j.audience.when}
        assert not LATIN.search(words.replace("NPS", "")), (code, words)


def test_the_chinese_explain_page_words_each_leaf(client: TestClient, db_url: str, seed: Any) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/explain", params={"customer": "C1", "at": seed.now.strftime("%Y-%m-%dT%H:%M")}).text
    leaves = re.findall(r'data-k="leaf" title="([^"]*)">([^<]*)<', page)
    assert len(leaves) >= 5, page
    for code, words in leaves:
        assert not re.search(r"\b(customer|policy|claim|event)\.\w+", words), (code, words)
        assert not re.search(r"\b(eq|ne|lt|le|gt|ge|in|not_in|contains|older_than|within_last)\b", words), words


def test_every_shipped_schedule_reads_in_words_on_the_chinese_journey_list(client: TestClient, db_url: str) -> None:
    set_locale(db_url, "olga", "zh-CN")
    login(client, "olga")
    page = client.get("/ops/journeys").text
    shown = re.findall(r'data-k="entry-cron" title="([^"]*)">([^<]*)<', page)
    crons = {j.journey.entry.schedule.cron for j in validated_report().journeys if j.journey.entry.schedule}
    assert {code for code, _ in shown} == crons and len(crons) >= 5
    for code, words in shown:
        assert words != code and not LATIN.search(words), (code, words)
    assert ("0 10 * * WED", "在 10:00, 仅在 星期三") in shown


def test_a_cron_line_in_english_and_one_it_cannot_read() -> None:
    assert Translator("en").cron("0 10 1 1,4,7,10 *") == \
        "At 10:00, on day 1 of the month, only in January, April, July, and October"
    assert Translator("zh-CN").cron("0 10 * * 1-5") == "在 10:00, 星期一 到 星期五"
    assert Translator("zh-CN").cron("not a cron line") == "not a cron line"
