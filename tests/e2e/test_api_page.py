"""The API page in Chromium: reached from the nav, one card per operation of the OpenAPI
document, examples open on demand; screenshots at desktop and phone widths."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import DESKTOP, PHONE, SCREENSHOTS, api_get, login
from tests.e2e.test_screenshots import shoot


@pytest.mark.e2e
@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_api_page_documents_every_operation(new_page, customer, live_server, size, viewport):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    status, doc = api_get(live_server.url, "/v1/openapi.json", "")
    assert status == 200
    page = new_page(viewport=viewport)
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API", exact=True).click()
    expect(page.get_by_role("heading", name="API", level=1)).to_be_visible()
    expect(page.get_by_test_id("endpoint")).to_have_count(
        sum(len(methods) for methods in doc["paths"].values()))
    shoot(page, "20-api-page", size)

    topup = page.locator("#op-payment_intents")
    topup.scroll_into_view_if_needed()
    expect(topup.get_by_role("link", name="Idempotency-Key")).to_be_visible()
    topup.get_by_text("Example").click()
    expect(topup.locator("pre").first).to_contain_text('-d \'{"amount": 2500}\'')
    topup.screenshot(path=SCREENSHOTS / f"21-api-endpoint-{size}.png", animations="disabled")
