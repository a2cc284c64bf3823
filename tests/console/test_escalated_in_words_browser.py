"""An escalated task says so in words in the agent's inbox and on the supervisor's desk, in real Chromium against a
real uvicorn server at desktop and phone width, in Chinese and English.

Before, the inbox marked a task the desk had escalated (its SLA breached, a supervisor told) only by a red bar
beside its first cell: nothing a screen reader reads, nothing that tells the bar from the overdue row's own red,
and on a phone a stray stripe inside the card. The supervisor's list of team tasks did not mark it at all. The
task page said "Escalated"; the lists now say it too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from store.db import session_scope
from store.models import AgentTask
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

ESCALATED = {"zh-CN": "已升级", "en": "Escalated"}


SCREENS = [(device, locale) for device in (DESK, PHONE) for locale in ESCALATED]


@pytest.mark.parametrize(("device", "locale"), SCREENS, ids=[f"{'phone' if d is PHONE else 'desktop'}-{locale}"
                                                             for d, locale in SCREENS])
def test_an_escalated_task_says_so_in_the_lists(new_page: PageFactory, seed: Seed, db_url: str,
                                                device: dict[str, Any], locale: str) -> None:
    for name in ("ann", "sue"):
        set_locale(db_url, name, locale)
    late, other = seed.tasks["ann_first"], seed.tasks["ann_second"]
    with session_scope(db_url) as s:
        task = s.get(AgentTask, late)
        assert task is not None
        task.escalated, task.due_at = True, seed.now - timedelta(hours=1)
        s.add(task)

    page = new_page("ann", device)
    mine = page.get_by_test_id("my-tasks")
    expect(mine.locator(f"tr[data-task-id='{late}']")).to_contain_text(ESCALATED[locale])
    expect(mine.locator(f"tr[data-task-id='{other}']")).not_to_contain_text(ESCALATED[locale])
    assert_fits(page)

    desk = new_page("sue", device)
    desk.goto("/supervisor")
    team = desk.get_by_test_id("team-tasks")
    expect(team.locator(f"tr[data-task-id='{late}']")).to_contain_text(ESCALATED[locale])
    expect(team.locator(f"tr[data-task-id='{other}']")).not_to_contain_text(ESCALATED[locale])
    assert_fits(desk)
