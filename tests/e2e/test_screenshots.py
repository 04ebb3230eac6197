"""Screenshots of every page a customer sees, at desktop (1280x800) and phone (390x844)
widths, into artifacts/screenshots/ (gitignored) for people to look at. Each page is
also checked for what a screenshot shows badly: content wider than the window."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    DECLINED,
    DESKTOP,
    PAY,
    PHONE,
    SCREENSHOTS,
    VISA,
    fill_card,
    open_sign_up_link,
)

OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll('body *')]
    .filter((el) => el.getClientRects().length && el.getBoundingClientRect().right > width + 1)
    .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                 (el.className && typeof el.className === 'string' ? '.' + el.className : ''))
    .slice(0, 5);
}"""


def shoot(page: Any, name: str, size: str) -> None:
    """Save a full-page PNG and check that nothing sticks out to the right."""
    page.screenshot(path=SCREENSHOTS / f"{name}-{size}.png", full_page=True,
                    animations="disabled", caret="hide")
    assert page.evaluate(OVERFLOW) == [], f"{name} at {size} is wider than the window"


@pytest.mark.e2e
@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshots(new_page, mail, size, viewport):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page(viewport=viewport)

    page.goto("/login")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shoot(page, "01-login", size)

    page.goto("/signup")
    page.get_by_label("Company or project").fill("Analytical Engines Ltd")
    page.get_by_label("Email").fill(f"ada.lovelace.{size}@analytical-engines.example.com")
    shoot(page, "02-signup", size)
    page.get_by_label("Password").fill("difference-engine-1843")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    shoot(page, "02b-signup-check-email", size)
    open_sign_up_link(page, mail)
    shoot(page, "02c-signup-confirm", size)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_test_id("new-api-key")).to_be_visible()
    shoot(page, "03-welcome-key", size)

    page.get_by_role("link", name="Top up", exact=True).click()
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()
    shoot(page, "04-topup-before", size)

    fill_card(page, DECLINED)
    page.get_by_role("button", name=PAY).click()
    expect(page.locator("#card-error")).to_contain_text("Your card was declined.")
    shoot(page, "05-topup-declined", size)

    page.get_by_label("Or another amount (USD)").fill("1")
    page.get_by_role("button", name=PAY).click()
    expect(page.locator("#amount-error")).to_be_visible()
    shoot(page, "06-topup-amount-error", size)

    page.get_by_label("$25.00").check()
    fill_card(page, VISA)
    page.get_by_role("button", name=PAY).click()
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    shoot(page, "07-topup-after", size)

    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#ledger tbody tr")).to_have_count(1)
    shoot(page, "08-dashboard", size)

    page.get_by_role("link", name="API keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate").first.click()
    expect(page.get_by_test_id("new-api-key")).to_be_visible()
    shoot(page, "09-keys-new-key", size)

    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_test_id("meter-apiCalls")).to_be_visible()
    shoot(page, "10-usage", size)

    page.get_by_role("link", name="Plans").click()
    expect(page.get_by_test_id("plan-free")).to_contain_text("Current plan")
    shoot(page, "11-plans-free", size)

    page.get_by_role("link", name="Upgrade to Pro").click()
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()
    shoot(page, "12-upgrade", size)
    fill_card(page, VISA)
    page.get_by_role("button", name="Subscribe for $49.00/month").click()
    expect(page.get_by_test_id("plan-pro")).to_contain_text("Current plan")
    shoot(page, "13-plans-pro", size)

    page.get_by_role("link", name="Invoices").click()
    expect(page.locator("tbody tr").first).to_be_visible()
    shoot(page, "14-invoices", size)
    page.locator("tbody tr a").first.click()
    expect(page.get_by_role("link", name="Download PDF")).to_be_visible()
    expect(page.get_by_test_id("stripe-invoice-number")).to_contain_text("Stripe invoice ")
    shoot(page, "15-invoice", size)
