"""Upgrading Free to Pro in Chromium: the card goes to localstripe's Stripe.js, Tally
subscribes, and the limits change at once; then cancel at period end and resume. A card
that needs 3-D Secure shows the bank's challenge: completed, the account is Pro; failed,
nothing changes and the page says so."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import DECLINED, THREE_D_SECURE, VISA, api_get, fill_card, login
from tests.e2e.test_usage_page import shoot_both

NOTHING_CHARGED = "Nothing was charged; you are still on Free."
AUTH_FAILED = "We are unable to authenticate your payment method."


def open_upgrade(page: Any, customer: Any) -> None:
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Plans").click()
    expect(page.get_by_test_id("plan-free")).to_contain_text("Current plan")
    page.get_by_role("link", name="Upgrade to Pro").click()
    expect(page).to_have_url(re.compile(r"/billing/upgrade$"))
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()


def api_call_limit(page: Any) -> str:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    return page.get_by_test_id("meter-apiCalls").locator(".meter-value .muted").inner_text()


@pytest.mark.e2e
def test_upgrade_with_a_card_changes_limits_then_cancel_and_resume(page, customer, live_server):
    login(page, customer)
    assert api_call_limit(page) == "of 1,000 calls"
    page.get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="Upgrade to Pro").click()
    fill_card(page, VISA)
    page.get_by_role("button", name=re.compile(r"^Subscribe for \$49\.00")).click()

    expect(page).to_have_url(re.compile(r"/plans$"))
    expect(page.locator(".flash")).to_contain_text("You are on Pro now")
    expect(page.get_by_test_id("plan-pro")).to_contain_text("Current plan")
    expect(page.get_by_test_id("subscription-outcome")).to_contain_text("Renews on")
    expect(page.get_by_test_id("subscription-outcome")).to_contain_text("$49.00")
    status, sub = api_get(live_server.url, "/v1/billing/subscription", customer.api_key)
    assert status == 200 and sub["plan"] == "pro" and sub["status"] == "active"
    assert sub["cancelAtPeriodEnd"] is False
    # The new limits apply at once: the usage page and the API say so.
    assert api_call_limit(page) == "of 100,000 calls"
    _, usage = api_get(live_server.url, "/v1/billing/usage", customer.api_key)
    assert usage["usage"]["apiCallsLimit"] == 100_000

    page.get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="Cancel at period end").click()
    # A page asks first, saying what happens and when; "Keep Pro" goes back unchanged.
    expect(page.get_by_test_id("cancel-confirm")).to_contain_text("Then the account moves to Free")
    shoot_both(page, "19-cancel-confirm")
    page.get_by_role("link", name="Keep Pro").click()
    _, sub = api_get(live_server.url, "/v1/billing/subscription", customer.api_key)
    assert sub["cancelAtPeriodEnd"] is False
    page.get_by_role("link", name="Cancel at period end").click()
    page.get_by_role("button", name="Cancel at period end").click()
    outcome = page.get_by_test_id("subscription-outcome")
    expect(outcome).to_contain_text("Cancelled: you keep Pro until")
    expect(outcome).to_contain_text("then move to Free")
    # The badge says it ends, not "active"; the card can still be managed until then.
    expect(page.get_by_test_id("subscription")).to_contain_text("ends ")
    expect(page.get_by_test_id("subscription")).not_to_contain_text("active")
    expect(page.get_by_role("button", name="Manage card and billing")).to_be_visible()
    shoot_both(page, "20-plans-cancelled")
    _, sub = api_get(live_server.url, "/v1/billing/subscription", customer.api_key)
    assert sub["cancelAtPeriodEnd"] is True and sub["plan"] == "pro"

    page.get_by_role("button", name="Resume Pro").click()
    expect(outcome).to_contain_text("Renews on")
    _, sub = api_get(live_server.url, "/v1/billing/subscription", customer.api_key)
    assert sub["cancelAtPeriodEnd"] is False and sub["status"] == "active"


@pytest.mark.e2e
def test_a_declined_card_says_so_beside_the_card_and_changes_nothing(page, customer, live_server):
    open_upgrade(page, customer)
    fill_card(page, DECLINED)
    page.get_by_role("button", name=re.compile(r"^Subscribe")).click()
    expect(page.locator("#card-error")).to_be_visible()
    expect(page.locator("#card-error")).to_have_text(f"Your card was declined. {NOTHING_CHARGED}")
    expect(page).to_have_url(re.compile(r"/billing/upgrade$"))
    expect(page.get_by_role("button", name=re.compile(r"^Subscribe"))).to_be_enabled()
    _, me = api_get(live_server.url, "/v1/me", customer.api_key)
    assert me["tier"] == "free"


def subscribe(page: Any) -> None:
    page.get_by_role("button", name=re.compile(r"^Subscribe for \$49\.00")).click()


@pytest.mark.e2e
def test_3d_secure_completed_upgrades_to_pro(page, customer, live_server):
    open_upgrade(page, customer)
    fill_card(page, THREE_D_SECURE)
    subscribe(page)
    expect(page.locator("#upgrade-status")).to_have_text(
        "Your bank asks you to confirm this payment…")

    page.get_by_role("button", name="Complete authentication").click()

    expect(page).to_have_url(re.compile(r"/plans$"))
    expect(page.locator(".flash")).to_contain_text("You are on Pro now")
    expect(page.get_by_test_id("plan-pro")).to_contain_text("Current plan")
    expect(page.get_by_test_id("subscription-outcome")).to_contain_text("Renews on")
    status, sub = api_get(live_server.url, "/v1/billing/subscription", customer.api_key)
    assert status == 200 and (sub["plan"], sub["status"]) == ("pro", "active")
    assert api_call_limit(page) == "of 100,000 calls"
    _, invoices = api_get(live_server.url, "/v1/billing/invoices", customer.api_key)
    assert [(i["amount"], i["status"]) for i in invoices["data"]] == [(4900, "paid")]


@pytest.mark.e2e
def test_3d_secure_failed_changes_nothing_and_says_so(page, customer, live_server, stripe_client):
    open_upgrade(page, customer)
    fill_card(page, THREE_D_SECURE)
    subscribe(page)

    page.get_by_role("button", name="Fail authentication").click()

    card_error = page.locator("#card-error")
    expect(card_error).to_contain_text(AUTH_FAILED)
    expect(card_error).to_contain_text(NOTHING_CHARGED)
    expect(page.get_by_role("button", name="Fail authentication")).to_have_count(0)
    expect(page.locator("#upgrade-status")).to_have_text("")
    expect(page).to_have_url(re.compile(r"/billing/upgrade$"))
    expect(page.get_by_role("button", name=re.compile(r"^Subscribe"))).to_be_enabled()
    _, me = api_get(live_server.url, "/v1/me", customer.api_key)
    assert me["tier"] == "free"
    _, sub = api_get(live_server.url, "/v1/billing/subscription", customer.api_key)
    assert sub["status"] == "canceled"  # nothing left that could still charge the card
    _, invoices = api_get(live_server.url, "/v1/billing/invoices", customer.api_key)
    assert invoices["data"] == []
    # Nor is the $49 left owing at Stripe (the Customer Portal would show it): it is void.
    _, billing = api_get(live_server.url, "/v1/billing", customer.api_key)
    at_stripe = stripe_client.v1.invoices.list(params={"customer": billing["stripe_customer_id"]})
    assert [(i.status, i.amount_remaining) for i in at_stripe.data] == [("void", 0)]
    assert api_call_limit(page) == "of 1,000 calls"
    page.get_by_role("link", name="Plans").click()
    expect(page.get_by_test_id("plan-free")).to_contain_text("Current plan")
    expect(page.get_by_test_id("subscription")).to_have_count(0)
