"""The report page shows the touches that failed over to another channel, in words, at desktop and phone width.

``failed_over`` was in the report's data (by channel it lowers the delivery rate) but the page had no
column for it. The touches are failed over by the real dispatcher (tests.failover_book).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from store.clock import to_local
from tests.console.conftest import DESK, PHONE, PageFactory, Seed, assert_fits
from tests.console.test_form_errors import set_locale
from tests.failover_book import FAILED_OVER, fail_over_two

pytestmark = pytest.mark.browser
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

HEADING = {"zh-CN": "失败后转其他渠道", "en": "Failed over to another channel"}


@pytest.mark.parametrize("locale", sorted(HEADING))
@pytest.mark.parametrize("device", [DESK, PHONE], ids=["desktop", "phone"])
def test_the_report_page_shows_touches_failed_over(new_page: PageFactory, seed: Seed, db_url: str,
                                                    device: dict[str, Any], locale: str) -> None:
    fail_over_two(db_url)
    set_locale(db_url, "olga", locale)
    today = to_local(seed.now, "Asia/Shanghai").date()
    page = new_page("olga", device, lands_on="**/ops/**")
    first, last = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
    assert page.goto(f"/ops/report?start={first}&end={last}&by=channel").status == 200
    figures = page.get_by_test_id("report-figures")
    column = [cell.strip() for cell in figures.locator("thead tr").first.locator("th").all_inner_texts()]
    assert HEADING[locale] in column
    expect(figures.locator("tr:has(th[data-group=sms]) td[data-metric=failed_over]")).to_have_text(str(FAILED_OVER))
    expect(figures.locator("tr:has(th[data-group=email]) td[data-metric=failed_over]")).to_have_text("0")
    # The total row is the first of the body.
    expect(figures.locator("tbody tr").first.locator("td[data-metric=failed_over]")).to_have_text(str(FAILED_OVER))
    assert_fits(page)
