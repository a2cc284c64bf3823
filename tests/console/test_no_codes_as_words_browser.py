"""The class-level guard for "words, not codes": every ops, agent, supervisor and admin page in Chinese, in real
Chromium at 1280 and 390 px (and in English at 1280 px), over the shipped journeys with activity seeded (exits by
every exit step of every journey, the engine's own exits, an exit an older version of a journey took, tasks, a
split, drops, a change under review). The text a person reads, less what a page shows as a code on purpose (``<code>``,
``<kbd>``, an SVG ``tspan.code``), what it quotes as written (``<pre>``: a journey's source, a diff) and
tooltips (``title``), may hold no snake_case or dotted code token (``callback_done``, ``task.completed``,
``gold_callback``), no locale code and no time zone's IANA name (``Asia/Shanghai``). Before, the Chinese journey
pages showed exit reasons like ``callback_done`` and the diagram's boxes ``send_wechat_first · 发送``. A split
variant the journey file gives a label may not be shown by its code alone, though in ``<code>``: its words come
first, its name beside them.
The same walk holds every page to the basics of access: each form control a person can reach has a name a screen
reader reads (its label; the task page's reassign menu had none), each image its ``alt``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest

from engine.language.journey_registry import load_in_force
from engine.language.validation import validate
from engine.loop.metric_sql import GROUPINGS
from store.clock import utcnow
from store.db import session_scope
from store.models import Enrollment
from tests.console.conftest import DESK, PHONE, PageFactory, Seed
from tests.console.ops_seed import seed_activity
from tests.console.test_form_errors import set_locale
from tests.console.test_review_browser import pending

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
__all__ = ["pending"]  # the fixture: the shipped journeys in force and a change of one under review

# An exit reason the journey file no longer has (taken under an older version): no label gives it words.
OLD_REASON = "callback_skipped"
# A code token: snake_case, dotted (an event type, a field, a file name) or a locale. Bounded by ASCII letters
# and digits only, so a code run into Chinese text ("属性 service_preference为travel") is found too.
CODE = re.compile(r"(?<![A-Za-z0-9_.])(?:[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+"
                  r"|zh-CN|en)(?![A-Za-z0-9_])"
                  # A time zone's IANA name (Asia/Shanghai, America/Los_Angeles): the pages word zones.
                  r"|(?<![A-Za-z0-9_/])[A-Z][a-z]+/[A-Z][A-Za-z_]+(?![A-Za-z0-9_])")
# Identifiers a person types, shown as such on purpose. Kept small: anything else is a code shown as a word.
TYPED: set[str] = set()
# Customer data is not a code, however it is spelt: an email address (masked or not).
EMAIL = re.compile(r"\S+@\S+")
# The visible text of the page and its title, each text node on its own: closed <details> opened first,
# option texts counted when their menu shows, placeholders counted.
SHOWN = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const skip = 'code, kbd, pre, script, style, title, textarea, tspan.code';
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest(skip)) continue;
    const host = el.closest('select') || el;
    if (!host.checkVisibility({visibilityProperty: true})) continue;
    const text = node.textContent.trim();
    if (text) texts.push(text);
  }
  document.querySelectorAll('[placeholder]').forEach(el => {
    if (el.checkVisibility({visibilityProperty: true})) texts.push(el.getAttribute('placeholder'));
  });
  return texts;
}"""


# The variants a page shows by their name alone, as a code (no words beside it): on the page, [data-k=variant]
# with no text outside its <code>; on the diagram, an arrow whose label is a tspan.code.
BARE_VARIANTS = """() => {
  const bare = [];
  document.querySelectorAll('[data-k=variant]').forEach(el => {
    const words = el.cloneNode(true);
    words.querySelectorAll('code').forEach(c => c.remove());
    if (!words.textContent.trim()) bare.push(el.dataset.code);
  });
  document.querySelectorAll('text.edge-label[data-code]').forEach(el => {
    if (el.querySelector('tspan.code')) bare.push(el.dataset.code);
  });
  return bare;
}"""


# Form controls a person can reach with no accessible name (a <label>, aria-label(ledby) or title), and images
# with no alt text.
NAMELESS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('input, select, textarea, button')) {
    if (el.type === 'hidden' || !el.checkVisibility({visibilityProperty: true})) continue;
    const named = el.labels && el.labels.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || el.title || (el.tagName === 'BUTTON' && el.textContent.trim());
    if (!named) out.push(el.outerHTML.slice(0, 100));
  }
  document.querySelectorAll('img:not([alt])').forEach(img => out.push(img.outerHTML.slice(0, 100)));
  return out;
}"""


def labelled_variants() -> set[str]:
    """The names of the shipped journeys' split variants that have a label."""
    return {v.name for loaded in validate().journeys for step in loaded.journey.steps if step.split is not None
            for v in step.split.variants if v.label}


def codes_shown(page: Any) -> list[str]:
    """The code tokens in the text ``page`` shows as words."""
    found: list[str] = []
    for text in page.evaluate(SHOWN):
        found += [token for token in CODE.findall(EMAIL.sub(" ", text)) if token not in TYPED]
    return found


def seed_exits(url: str, customer_ids: list[int], now: datetime) -> dict[str, list[str]]:
    """An exit by every exit step of every shipped journey, and by the engine's reasons: the goal, the end of
    the steps, the anonymising purge; and one by a reason no version in force names. journey → reasons."""
    taken: dict[str, list[str]] = {}
    n = 0
    with session_scope(url) as s:
        for loaded in validate().journeys:
            journey = loaded.journey
            exits = [(step.id, step.exit.reason) for step in journey.steps if step.exit is not None]
            first = journey.steps[0].id
            exits += [(first, "goal"), (first, "completed"), (first, "anonymised")]
            if journey.id == "gold-monthly-callback":
                exits.append((exits[0][0], OLD_REASON))
            for step_id, reason in exits:
                n += 1
                at = now - timedelta(days=1, minutes=n)
                s.add(Enrollment(customer_id=customer_ids[n % len(customer_ids)], journey_id=journey.id,
                                 journey_version="v1", occurrence=f"exit-{n}", step_id=step_id, state="done",
                                 entered_at=at - timedelta(hours=1), exited_at=at, exit_reason=reason))
                taken.setdefault(journey.id, []).append(reason)
    return taken


def _pages(seed: Seed, pending: int, journeys: list[str]) -> dict[str, list[str]]:
    """user → the pages to open as that user (all of them in Chinese)."""
    today = utcnow().date()
    week = f"start={(today - timedelta(days=6)).isoformat()}&end={today.isoformat()}"
    ahead = f"start={today.isoformat()}&end={(today + timedelta(days=6)).isoformat()}"
    ops = ["/ops/journeys", *(f"/ops/journeys/{j}" for j in journeys),
           "/ops/explain", f"/ops/explain?customer=C1&at={today.isoformat()}T10:00",
           "/ops/simulate", f"/ops/simulate?{ahead}",
           "/ops/report", f"/ops/report?{week}", *(f"/ops/report?{week}&by={by}" for by in GROUPINGS),
           "/ops/test-send", "/ops/review", f"/ops/review/{pending}"]
    return {
        "olga": ops,
        "bob": ["/inbox", f"/tasks/{seed.tasks['bob']}"],
        "sue": ["/supervisor", "/inbox", f"/tasks/{seed.tasks['free']}"],
        "adam": ["/admin/users", "/admin/audit"],
    }


LANDING = {"olga": "**/ops/journeys", "bob": "**/inbox", "sue": "**/inbox", "adam": "**/admin/users"}


def _every_page(new_page: PageFactory, seed: Seed, db_url: str, pending: int, device: dict[str, Any],
                locale: str) -> dict[str, list[str]]:
    """The activity seeded, every page opened in ``locale``: the exits taken, by journey."""
    customers = list(seed.customers.values())
    seed_activity(db_url, customers, seed.now)
    taken = seed_exits(db_url, customers, seed.now)
    with session_scope(db_url) as s:
        load_in_force(s)
    for name in LANDING:
        set_locale(db_url, name, locale)
    problems: dict[str, list[str]] = {}
    labelled = labelled_variants()
    assert labelled, "the shipped journeys have no labelled variant: the variant checks would check nothing"
    opened = 0
    for name, paths in _pages(seed, pending, sorted(taken)).items():
        page = new_page(name, device, lands_on=LANDING[name])
        for path in paths:
            response = page.goto(path)
            assert response is not None and response.ok, (path, response and response.status)
            opened += 1
            found = codes_shown(page)
            found += [f"variant {name} without its words" for name in page.evaluate(BARE_VARIANTS) if name in labelled]
            found += [f"no label: {html}" for html in page.evaluate(NAMELESS)]
            if found:
                problems[path] = sorted(set(found))
    assert not problems, problems
    assert opened > len(taken) + 15
    return taken


def test_no_page_shows_a_code_as_a_word_in_english(new_page: PageFactory, seed: Seed, db_url: str,
                                                   pending: int) -> None:
    """The same walk in English, at desktop width: English words are no more a place for codes."""
    _every_page(new_page, seed, db_url, pending, DESK, "en")


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_no_page_shows_a_code_as_a_word(new_page: PageFactory, seed: Seed, db_url: str, pending: int,
                                        device: dict[str, Any]) -> None:
    taken = _every_page(new_page, seed, db_url, pending, device, "zh-CN")

    # What the guard stands on: the exits are on the pages, in words, each with its code kept.
    page = new_page("olga", device, lands_on="**/ops/journeys")
    page.goto("/ops/journeys/gold-monthly-callback")
    exits = page.get_by_test_id("step-counts").locator("[data-k=exit-reason]")
    shown = dict(zip(exits.evaluate_all("els => els.map(e => e.dataset.code)"), exits.all_inner_texts(), strict=True))
    assert set(shown) == set(taken["gold-monthly-callback"])
    assert shown["callback_done"] == "回访已完成"
    assert shown["goal"] == "达成目标" and shown[OLD_REASON] == f"出口 {OLD_REASON}"
    assert exits.locator("code").all_inner_texts() == [OLD_REASON]
    # The diagram's boxes: the step table's words, the id kept as a code under them, both whole in the tooltip.
    box = page.get_by_test_id("diagram").locator("g[data-step='done']")
    playwright_sync.expect(box.locator("[data-k=step-words]")).to_have_text("退出: 回访已完成")
    playwright_sync.expect(box.locator(".step-id code")).to_have_text("done")
    assert box.locator("title").first.text_content() == "退出: 回访已完成 (done)"
    page.goto("/ops/journeys/claim-crm-case")
    webhook = page.get_by_test_id("step-counts").locator("tr[data-step='open_case'] [data-k=step-words]")
    playwright_sync.expect(webhook).to_have_text("调用外部系统: 客户关系管理系统：开立服务工单")

    # A split's variants: their words in the step table, the diagram and the experiments, each name kept as a code
    # (hidden in the diagram's one-line box, in the arrows' tooltips).
    page.goto("/ops/journeys/gold-value-added-services")
    variants = page.get_by_test_id("step-counts").locator("tr[data-step='channel_test'] [data-k=variant]")
    assert variants.all_inner_texts() == ["微信优先 wechat_first", "邮件优先 email_first"]
    assert variants.locator("code").all_inner_texts() == ["wechat_first", "email_first"]
    diagram = page.get_by_test_id("diagram")
    playwright_sync.expect(diagram.locator("g[data-step='channel_test'] [data-k=step-words]")).to_have_text(
        "随机分流: 微信优先 45%、邮件优先 45%、对照组 10%", use_inner_text=True)
    arrow = diagram.locator("text.edge-label[data-code='email_first']")
    playwright_sync.expect(arrow).to_contain_text("分组 邮件优先 45%")
    group = page.get_by_test_id("experiment-table").locator("tr[data-group='email_first'] th")
    playwright_sync.expect(group).to_have_text("邮件优先 email_first", use_inner_text=True)
