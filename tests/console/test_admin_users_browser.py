"""The admin's users page in real Chromium against a real uvicorn server, in Chinese. At 390 px it was an
eight-column table squeezed into a sideways-scrolling box (headers one character a line, the "active" switches
past the screen's edge); now each user is a card, as on the desk's lists, every switch on the screen. Each
switch's name says what it switches and for whom: before, a screen reader read a column of bare "是"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits, viewport_width
from tests.console.test_form_errors import set_locale

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_every_users_switches_are_on_the_screen_and_say_whose_they_are(new_page: PageFactory, seed: Seed,
                                                                       db_url: str, device: dict[str, Any]) -> None:
    set_locale(db_url, "adam", "zh-CN")
    page = new_page("adam", device, lands_on="**/admin/users")
    width = viewport_width(page)
    for name in seed.users:
        for switch, words in (("shift", "在班"), ("active", "启用")):
            button = page.get_by_role("button", name=f"{name} {words}：是")
            expect(button).to_have_count(1)
            expect(button).to_have_text("是")
            button.scroll_into_view_if_needed()
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (name, switch, box)
            assert box["height"] >= (44 if device is PHONE else 0)  # a finger's target on a phone
    assert_fits(page)

    # The switch does what it says: bob goes off shift, and his switch says so.
    page.get_by_role("button", name="bob 在班：是").click()
    expect(page.get_by_role("button", name="bob 在班：否")).to_have_text("否")
