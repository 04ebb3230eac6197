"""The top-up page in Chromium: amount, card (localstripe's Stripe.js), pay, and the
balance on the page updating in place, against the app on a live server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import DECLINED, PAY, THREE_D_SECURE, VISA, balance, fill_card, login

DECLINE_MESSAGE = "Your card was declined. Nothing was charged or credited."
AUTH_FAILED = "We are unable to authenticate your payment method."


def open_top_up(page: Any, customer: Any) -> None:
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Top up").click()
    expect(page).to_have_url(re.compile(r"/topup$"))
    expect(page.get_by_role("heading", name="Top up credit")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")
    # Stripe.js has mounted the card element.
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()
    # Set on this document only: it survives only if the page is never reloaded.
    page.evaluate("window.__marker = 'no-reload'")


def pay(page: Any) -> None:
    page.get_by_role("button", name=PAY).click()


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__marker") == "no-reload"


@pytest.mark.e2e
def test_pay_preset_amount_updates_balance_in_place(page, customer, live_server):
    open_top_up(page, customer)
    page.get_by_label("$25.00").check()
    fill_card(page, VISA)
    pay(page)

    expect(page.locator("#topup-status")).to_have_text(
        "Added $25.00. Your balance is $25.00.")
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    expect(page.locator("#card-error")).to_be_hidden()
    expect(page.get_by_role("button", name=PAY)).to_be_enabled()
    assert_not_reloaded(page)
    assert balance(live_server.url, customer.api_key) == 2500

    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    activity = page.locator("section.card", has=page.get_by_role("heading",
                                                                 name="Recent activity"))
    rows = activity.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Top-up Paid by card")
    expect(rows.first.locator("td.num")).to_have_text("+$25.00")


@pytest.mark.e2e
def test_pay_custom_amount(page, customer, live_server):
    open_top_up(page, customer)
    pay_button = page.locator("#pay")
    expect(pay_button).to_have_text(re.compile(r"^Pay \$\d+\.00 and add credit$"))  # the preset
    amount = page.get_by_label("Or another amount (USD)")
    amount.fill("5,50")  # not an amount Tally reads: no figure on the button
    expect(pay_button).to_have_text("Pay and add credit")
    amount.fill("1,250")
    expect(pay_button).to_have_text("Pay $1,250.00 and add credit")
    amount.fill("12.5")
    expect(pay_button).to_have_text("Pay $12.50 and add credit")
    expect(page.locator("[name=preset]:checked")).to_have_count(0)  # typing unpicks the preset
    fill_card(page, VISA)
    pay(page)

    expect(page.locator("#topup-status")).to_have_text("Added $12.50. Your balance is $12.50.")
    expect(page.get_by_test_id("balance")).to_have_text("$12.50")
    assert_not_reloaded(page)
    assert balance(live_server.url, customer.api_key) == 1250


@pytest.mark.e2e
def test_declined_card_shows_error_and_credits_nothing(page, customer, live_server):
    open_top_up(page, customer)
    fill_card(page, DECLINED)
    pay(page)

    card_error = page.locator("#card-error")
    expect(card_error).to_have_text(DECLINE_MESSAGE)
    expect(card_error).to_have_attribute("role", "alert")
    # The message sits with the card field, not somewhere else on the page.
    expect(page.locator(".field", has=page.locator("#card-element"))
           .locator("#card-error")).to_be_visible()
    expect(page.locator("#topup-status")).to_have_text("")
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")
    expect(page.get_by_role("button", name=PAY)).to_be_enabled()
    assert_not_reloaded(page)
    assert balance(live_server.url, customer.api_key) == 0


@pytest.mark.e2e
def test_retry_with_another_card_after_a_decline(page, customer, live_server):
    open_top_up(page, customer)
    fill_card(page, DECLINED)
    pay(page)
    expect(page.locator("#card-error")).to_have_text(DECLINE_MESSAGE)

    fill_card(page, VISA)
    pay(page)
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    expect(page.locator("#card-error")).to_be_hidden()
    assert balance(live_server.url, customer.api_key) == 2500


@pytest.mark.e2e
def test_3d_secure_completed_credits(page, customer, live_server):
    open_top_up(page, customer)
    fill_card(page, THREE_D_SECURE)
    pay(page)

    page.get_by_role("button", name="Complete authentication").click()

    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    expect(page.locator("#topup-status")).to_have_text("Added $25.00. Your balance is $25.00.")
    expect(page.get_by_role("button", name="Complete authentication")).to_have_count(0)
    assert_not_reloaded(page)
    assert balance(live_server.url, customer.api_key) == 2500


@pytest.mark.e2e
def test_3d_secure_failed_shows_error_and_credits_nothing(page, customer, live_server):
    open_top_up(page, customer)
    fill_card(page, THREE_D_SECURE)
    pay(page)

    page.get_by_role("button", name="Fail authentication").click()

    card_error = page.locator("#card-error")
    expect(card_error).to_contain_text(AUTH_FAILED)
    expect(card_error).to_contain_text("Nothing was charged or credited.")
    expect(page.get_by_role("button", name="Fail authentication")).to_have_count(0)
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")
    assert_not_reloaded(page)
    assert balance(live_server.url, customer.api_key) == 0


@pytest.mark.e2e
def test_amount_out_of_bounds_is_refused_beside_the_field(
    page, customer, live_server, localstripe_url
):
    open_top_up(page, customer)
    to_stripe: list[str] = []
    page.on("request", lambda request: to_stripe.append(request.url)
            if request.url.startswith(localstripe_url) else None)
    fill_card(page, VISA)
    amount_field = page.locator("#amount-field")
    has_error = re.compile(r"\bhas-error\b")

    for amount, message in [
        ("1.00", "Top up between $5.00 and $1,000.00."),
        ("1000.01", "Top up between $5.00 and $1,000.00."),
        ("ten dollars", "Enter an amount such as 25.00."),
    ]:
        page.get_by_label("Or another amount (USD)").fill(amount)
        pay(page)

        expect(amount_field.locator("#amount-error")).to_have_text(message)
        expect(amount_field).to_have_class(has_error)
        expect(amount_field.locator(".hint")).to_be_hidden()  # the error replaces the hint
        amount_input = page.get_by_label("Or another amount (USD)")
        expect(amount_input).to_have_attribute("aria-invalid", "true")
        expect(amount_input).to_have_attribute("aria-describedby", "amount-error")
        expect(page.get_by_role("button", name=PAY)).to_be_enabled()
        expect(page.locator("#topup-status")).to_have_text("")
        expect(page.locator("#card-error")).to_be_hidden()
        expect(page.get_by_test_id("balance")).to_have_text("$0.00")

    assert to_stripe == []  # Stripe.js never confirmed anything
    assert balance(live_server.url, customer.api_key) == 0
    assert_not_reloaded(page)

    # Picking a preset clears the error.
    page.get_by_label("$10.00").check()
    expect(page.locator("#amount-error")).to_be_hidden()
    expect(amount_field).not_to_have_class(has_error)
    expect(page.get_by_label("Or another amount (USD)")).not_to_have_attribute(
        "aria-invalid", "true")
    expect(amount_field.locator(".hint")).to_be_visible()
