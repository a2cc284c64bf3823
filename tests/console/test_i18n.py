"""Every UI string goes through the catalogues, both catalogues translate all of them, pages follow the user."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from console import labels
from console.i18n import Translator, catalog_messages
from tests.console.conftest import Seed, login

CONSOLE = Path(__file__).resolve().parents[2] / "console"
TEMPLATE_CALL = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
# flash(request, "…"), gettext("…"), SeedListError("…") (shown translated) and the values of msgid
# dictionaries ('    "code": "…",').
PY_MSGID = re.compile(
    r"""(?:flash\(request,\s*|gettext\(\s*|SeedListError\(\s*|^\s*"[a-z_]+":\s*)"((?:[^"\\]|\\.)*)"(?:\s*\n\s*"((?:[^"\\]|\\.)*)")?""",
    re.M,
)
# Besides every route module (routes_*.py, found by name so a new one is scanned too): the modules
# whose words reach a page.
PAGE_MODULES = ("i18n.py", "app.py", "form_errors.py", "seed_send.py")


def scanned_modules() -> list[Path]:
    return sorted({*CONSOLE.glob("routes_*.py"), *(CONSOLE / name for name in PAGE_MODULES)})


def used_msgids() -> set[str]:
    ids: set[str] = set()
    for path in (CONSOLE / "templates").glob("*.html"):
        ids |= {a if a is not None and a != "" else b for a, b in TEMPLATE_CALL.findall(path.read_text("utf-8"))}
    for path in scanned_modules():
        ids |= {a + (b or "") for a, b in PY_MSGID.findall(path.read_text("utf-8"))}
    # The words for codes (queues, steps, product lines, events...): console/labels.py.
    for table in labels.TABLES.values():
        ids |= set(table.values())
    return ids


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_every_message_used_is_translated(locale: str) -> None:
    catalogue = catalog_messages(locale)
    used = used_msgids()
    assert len(used) > 100
    missing = sorted(m for m in used if not catalogue.get(m))
    assert not missing, f"not in the {locale} catalogue: {missing}"


def test_every_module_that_flashes_a_message_is_scanned() -> None:
    flashing = {p.name for p in CONSOLE.glob("*.py") if "flash(request" in p.read_text("utf-8")} - {"web.py"}
    assert flashing <= {p.name for p in scanned_modules()}
    assert {"routes_ops.py", "routes_seed_send.py", "routes_review.py"} <= {p.name for p in scanned_modules()}


def test_templates_have_no_bare_text_outside_the_catalogue() -> None:
    # Text nodes between tags must be template expressions, not literal words (numbers/punctuation aside).
    literal = re.compile(r">\s*([A-Za-z\u4e00-\u9fff][^<{]*?)\s*<")
    allowed = {"English", "中文"}  # language names are shown in their own language on purpose
    jinja = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.S)
    for path in (CONSOLE / "templates").glob("*.html"):
        markup = jinja.sub("", path.read_text("utf-8"))
        found = {m.strip() for m in literal.findall(markup)} - allowed
        assert not found, f"{path.name}: {found}"


def test_translator_formats_countdowns_per_locale() -> None:
    assert Translator("zh-CN").remaining(2 * 3600 + 5 * 60) == "2小时05分"
    assert Translator("en").remaining(-(30 * 60)) == "overdue 0h 30m"
    assert Translator("en").remaining(3 * 86400 + 3600) == "3d 1h"


def test_each_user_sees_pages_in_their_language(client: TestClient, seed: Seed) -> None:
    login(client, "bob")  # zh-CN
    page = client.get("/inbox").text
    assert "我的任务" in page and "My tasks" not in page
    client.cookies.clear()
    login(client, "ann")  # en
    page = client.get("/inbox").text
    assert "My tasks" in page and "我的任务" not in page


def test_user_switches_language(client: TestClient) -> None:
    token = login(client, "ann")
    client.post("/me/locale", data={"csrf_token": token, "locale": "zh-CN", "back": "/inbox"})
    assert "我的任务" in client.get("/inbox").text


def test_every_queue_step_and_journey_a_person_sees_has_words_in_both_languages() -> None:
    from console.queues import load
    from engine.language.validation import validate

    report = validate()
    desk, problems = load()
    assert desk is not None, problems
    queues = {s.task.queue for j in report.journeys for s in j.journey.steps if s.task} | set(desk.declared)
    steps = {s.id for j in report.journeys for s in j.journey.steps if s.task}
    assert queues - set(labels.QUEUE_NAMES) == set()
    assert steps - set(labels.STEP_NAMES) == set()
    # Journey names are written "中文 / English": each language shows its half.
    assert [j.id for j in report.journeys if " / " not in j.journey.name] == []
    zh, en = Translator("zh-CN"), Translator("en")
    assert zh.label("queue", "claims_fast_track") == "小额理赔快速通道" and en.label("queue", "gold_callback") == \
        "Gold monthly callbacks"
    assert zh.label("product_line", "health") == "健康险" and zh.label("status", "lapsed") == "已失效"
    assert zh.label("queue", "brand_new_queue") == "brand new queue"  # unknown: shown as written, not hidden


CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_event_type_is_shown_in_words_in_both_languages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console's catalogue names the built-in types; a type declared in config/events.yaml (events are
    data: authors add them without a developer) is shown by the file's own ``label``, and one without a label
    as its code written out, never blank."""
    from engine.language import event_types

    zh, en = Translator("zh-CN"), Translator("en")
    for code in event_types.current():
        assert CJK.search(zh.label("event", code)), code
        assert en.label("event", code) not in (code, labels.humanised(code)), code

    config = tmp_path / "config"
    config.mkdir()
    shipped = (CONSOLE.parent / "config" / "events.yaml").read_text(encoding="utf-8")
    (config / "events.yaml").write_text(
        shipped + "pet.adopted:\n  description: The customer adopted a pet.\n"
                  "  label: {zh-CN: 领养宠物, en: Pet adopted}\n"
                  "pet.lost:\n  description: The customer's pet went missing.\n", encoding="utf-8")
    monkeypatch.setenv("JOURNEYS_CONFIG_DIR", str(config))
    assert (zh.label("event", "pet.adopted"), en.label("event", "pet.adopted")) == ("领养宠物", "Pet adopted")
    assert zh.label("event", "pet.lost") == "pet.lost"
    assert zh.label("event", "policy.premium_paid") == "续期保费已缴"


def test_every_delivery_rule_that_drops_or_moves_a_touch_has_words() -> None:
    from engine.planning.delivery_rules import DROP_CAP, DROP_NO_CHANNEL, DROP_PREEMPTED, MOVED_QUIET
    from engine.sending.cap_check import CHANNEL_RULE, JOURNEY_RULE

    zh, en = Translator("zh-CN"), Translator("en")
    for rule in (DROP_CAP, DROP_NO_CHANNEL, DROP_PREEMPTED, MOVED_QUIET, CHANNEL_RULE, JOURNEY_RULE):
        assert CJK.search(zh.label("rule", rule)), rule
        assert en.label("rule", rule) != labels.humanised(rule), rule
