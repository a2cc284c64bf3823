"""Refused console forms in real Chromium at 1280 and 390 px: the users page with a taken user name, and
a task reassigned without its agent (the browser's own checks bypassed), each back on its page with a
message in the user's language and nothing wider than the window."""

from __future__ import annotations

import pytest

from tests.console.conftest import DESK, PHONE, PageFactory, Seed

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")


def no_sideways_scroll(page: object) -> None:
    overflow = page.evaluate(  # type: ignore[attr-defined]
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px wider than the window"


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["1280", "390"])
def test_a_taken_username_comes_back_on_the_users_page(new_page: PageFactory, seed: Seed,
                                                       device: dict[str, object]) -> None:
    page = new_page("adam", device, lands_on="**/admin/users")
    expect = playwright_sync.expect
    expect(page.locator("#username-rule")).to_contain_text("lower-case letters")
    add = page.locator("form[action='/admin/users']")  # each user's row has a password form of its own too
    add.locator("input[name=username]").fill("ann")  # passes the field's pattern; taken on the server
    add.locator("input[name=password]").fill("long-enough-1")
    add.locator("button.primary").click()
    page.wait_for_url("**/admin/users")
    expect(page.locator(".flash.error")).to_contain_text("The username ann is taken")
    no_sideways_scroll(page)


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["1280", "390"])
def test_a_reassignment_without_its_agent_comes_back_with_a_message(new_page: PageFactory, seed: Seed,
                                                                   device: dict[str, object]) -> None:
    page = new_page("sue", device)
    page.goto("/supervisor")
    # A form whose agent field is left out (as a stale page or a script would post it).
    page.evaluate("""task => {
        const form = document.createElement('form');
        form.method = 'post'; form.action = `/tasks/${task}/reassign`;
        const token = document.querySelector('input[name=csrf_token]').cloneNode();
        form.appendChild(token); document.body.appendChild(form); form.submit();
    }""", seed.tasks["ann_first"])
    page.wait_for_url("**/supervisor")
    playwright_sync.expect(page.locator(".flash.error")).to_have_text("Please fill in Agent.")
    no_sideways_scroll(page)
