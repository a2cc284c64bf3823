"""The error page (error.html: 403, 404, 422) and the ops tools' form errors (explain, simulate, report) in
real Chromium against a real uvicorn server, at desktop (1280 px) and phone (390 px) widths, in Chinese and
English: the status, the words in the reader's language, the message visible inside the screen, a way on,
and no sideways scrolling of the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from console.i18n import Translator
from console.labels import FORM_FIELDS
from tests.console.conftest import DESK, PHONE, Seed, assert_fits, log_in_page, viewport_width
from tests.console.test_form_errors import set_locale
from tests.console.test_ops_form_errors import CASES

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")
DEVICES: dict[str, dict[str, Any]] = {"desktop": DESK, "phone": PHONE}
LOCALES = ("en", "zh-CN")


@pytest.fixture(params=[(d, loc) for d in sorted(DEVICES) for loc in LOCALES], ids=lambda p: f"{p[0]}-{p[1]}")
def opened(request: pytest.FixtureRequest, browser: Any, server: str, seed: Seed,
           db_url: str) -> Iterator[Any]:
    """Opens a page for a user in this case's language and width; JavaScript errors fail the test."""
    device, locale = request.param
    contexts: list[Any] = []
    errors: list[str] = []

    def make(username: str, lands_on: str) -> Any:
        set_locale(db_url, username, locale)
        context = browser.new_context(base_url=server, **DEVICES[device])
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return log_in_page(page, username, lands_on=lands_on)

    make.locale = locale  # type: ignore[attr-defined]
    yield make
    for context in contexts:
        context.close()
    assert errors == []


def _fits(page: Any, selector: str) -> None:
    """``selector`` is shown, within the screen's width, and the page does not scroll sideways."""
    element = page.locator(selector).first
    playwright_sync.expect(element).to_be_visible()
    box = element.bounding_box()
    width = viewport_width(page)
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box, width)
    assert_fits(page)


@pytest.mark.parametrize(("status", "address", "heading"), [
    (404, "/tasks/9223372036854775807", "Not found"),
    (404, "/no-such-page", "Not found"),  # an address no route has: the router's own refusal
    (405, "/logout", "This page could not be shown"),  # a form's address opened as a page
    (403, "/ops/simulate", "Not allowed"),
    (403, "/admin/users", "Not allowed"),
    (422, "/inbox?customer=" + "x" * 65, "This page could not be shown"),
])
def test_the_error_page(opened: Any, status: int, address: str, heading: str) -> None:
    t = Translator(opened.locale)
    page = opened("ann", "**/inbox")
    answer = page.goto(address)
    assert answer is not None and answer.status == status
    playwright_sync.expect(page.locator("main h1, section.card h1").first).to_have_text(t(heading))
    _fits(page, "section.card")
    back = page.get_by_role("link", name=t("Back to the start page"))
    _fits(page, f"a:has-text('{t('Back to the start page')}')")
    if status == 422:
        _fits(page, ".flash.error")  # which field, in the reader's words
        words = t("%(field)s is too long: at most %(limit)s characters.", field=t(FORM_FIELDS["customer"]), limit=64)
        playwright_sync.expect(page.locator(".flash.error").first).to_have_text(words)
    back.click()
    page.wait_for_url("**/inbox")


# One case of each tool, from the test client's table of form errors.
TOOL_CASES = [CASES[0], CASES[5], CASES[8]]


@pytest.mark.parametrize(("path", "params", "zh", "en"), TOOL_CASES, ids=[c[0] for c in TOOL_CASES])
def test_an_ops_tools_form_error(opened: Any, path: str, params: dict[str, str], zh: str, en: str) -> None:
    page = opened("olga", "**/ops/**")
    query = "&".join(f"{k}={v}" for k, v in params.items())
    answer = page.goto(f"{path}?{query}")
    assert answer is not None and answer.status in (200, 422)
    error = page.get_by_test_id("tool-error")
    playwright_sync.expect(error).to_contain_text(zh if opened.locale == "zh-CN" else en)
    _fits(page, "[data-testid=tool-error]")
    # The form is still there, with what was typed, so it can be corrected.
    for name, value in params.items():
        field = page.locator(f"form [name={name}]").first
        _fits(page, f"form [name={name}]")
        # (A date-time input shows a value only in its own shape, which a typed address need not have.)
        if field.evaluate("e => e.tagName === 'INPUT' && e.type !== 'datetime-local'"):
            assert field.input_value() == value


@pytest.mark.parametrize("device", sorted(DEVICES))
@pytest.mark.parametrize("locale", LOCALES)
def test_a_form_open_from_before_a_restart_says_so_and_leads_back_to_it(
        browser: Any, server: str, seed: Seed, device: str, locale: str) -> None:
    """The login form opened, then the console restarted without JOURNEYS_SECRET_KEY (or the session ended):
    its post carries a token no session holds. The person is told the form expired and nothing changed, with
    the way back to the form, not that they have no right to log in."""
    t = Translator(locale)
    context = browser.new_context(base_url=server, locale=locale, **DEVICES[device])
    try:
        page = context.new_page()
        page.goto("/login")
        context.clear_cookies()  # what a restart with a new session key does to the session the form belongs to
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", "wrong, and never checked")
        with page.expect_navigation():
            page.click("button[type=submit]")
        heading = page.locator("section.card h1").first
        playwright_sync.expect(heading).to_have_text(t("This form has expired"))
        assert t("Not allowed") not in page.locator("main").inner_text()
        _fits(page, "section.card")
        _fits(page, "[data-testid=form-again]")
        page.get_by_test_id("form-again").click()
        page.wait_for_url("**/login")
        log_in_page(page, "ann")  # the form opened again logs in
    finally:
        context.close()
