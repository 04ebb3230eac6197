"""The buttons that leave Tally for Stripe's hosted pages (Checkout, the Customer Portal)
get there in a real browser: the form posts to Tally, Tally redirects to the page Stripe
made, and the Content-Security-Policy lets the browser follow (form-action covers the
redirect). localstripe serves both pages in the tests."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import VISA, fill_card, login


@pytest.mark.e2e
def test_pay_on_stripes_checkout_page_opens_it(page, customer):
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="Upgrade to Pro").click()
    page.get_by_role("button", name="Or pay on Stripe's checkout page").click()
    expect(page).to_have_url(re.compile(r"/checkout/c/pay/cs_test_"))
    expect(page.locator("body")).to_contain_text("$49.00")


@pytest.mark.e2e
def test_manage_card_and_billing_opens_the_customer_portal(page, customer):
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="Upgrade to Pro").click()
    fill_card(page, VISA)
    page.get_by_role("button", name=re.compile(r"^Subscribe for \$49\.00")).click()
    expect(page.locator(".flash")).to_contain_text("You are on Pro now")
    page.get_by_role("button", name="Manage card and billing").click()
    expect(page).to_have_url(re.compile(r"/billing_portal/session/"))
    expect(page.locator("body")).to_contain_text("Pro")
