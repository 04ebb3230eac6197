"""Saved cards and auto-recharge in Chromium: add a card (3-D Secure included) on the
Payment methods page, a one-click top-up with a saved card, turning auto-recharge on, and
completing an auto-recharge the bank wants confirmed. Screenshots at desktop and phone
widths go to /tmp/dry16-*.png (and artifacts/screenshots/)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    DESKTOP,
    PAY,
    PHONE,
    SCREENSHOTS,
    THREE_D_SECURE,
    VISA,
    api_post,
    balance,
    fill_card,
    login,
)
from tests.e2e.test_screenshots import OVERFLOW
from tests.support.payments import confirm_setup
from tests.support.staff import make_staff


def shoot(page: Any, name: str) -> None:
    """A full-page PNG (nothing may stick out to the right, as tests/e2e/test_screenshots.py
    checks every page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path in (f"/tmp/dry16-{name}.png", str(SCREENSHOTS / f"{name}.png")):
        page.screenshot(path=path, full_page=True, animations="disabled", caret="hide")
    assert page.evaluate(OVERFLOW) == [], f"{name} is wider than the window"


def open_cards(page: Any, customer: Any) -> None:
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cards").click()
    expect(page.get_by_role("heading", name="Payment methods")).to_be_visible()
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()


def save(page: Any, number: str) -> None:
    fill_card(page, number)
    page.get_by_role("button", name="Save card").click()


def saved_card(live_server: Any, localstripe_url: str, customer: Any, number: str) -> str:
    status, seti = api_post(live_server.url, "/v1/billing/setup-intents", customer.api_key, {})
    assert status == 200, seti
    confirmed = confirm_setup(localstripe_url, seti["client_secret"], number, authenticate=True)
    status, card = api_post(live_server.url, "/v1/payment-methods", customer.api_key,
                            {"payment_method_id": confirmed["payment_method"]})
    assert status == 201, card
    return str(card["id"])


@pytest.mark.e2e
def test_add_a_card_and_a_3d_secure_card(new_page, customer, live_server):
    page = new_page()
    open_cards(page, customer)
    expect(page.get_by_test_id("no-cards")).to_have_text("No saved cards yet.")
    save(page, VISA)
    expect(page.get_by_text("Card Visa •••• 4242 saved as your default.")).to_be_visible()
    cards = page.get_by_test_id("saved-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Default")

    save(page, THREE_D_SECURE)  # the bank asks: the modal, then the card is saved
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_text("Card Visa •••• 3155 saved.")).to_be_visible()
    expect(cards).to_have_count(2)
    shoot(page, "cards-desktop")

    # A 3-D Secure that fails saves nothing and says so.
    save(page, THREE_D_SECURE)
    page.get_by_role("button", name="Fail authentication").click()
    expect(page.locator("#card-error")).to_contain_text("The card was not saved.")
    expect(cards).to_have_count(2)

    phone = new_page(PHONE)
    login(phone, customer)
    phone.goto("/payment-methods")
    expect(phone.get_by_test_id("saved-card")).to_have_count(2)
    shoot(phone, "cards-phone")

    page.get_by_role("button", name="Make default").click()
    expect(page.get_by_text("Visa •••• 3155 is your default card now.")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove Visa ending 4242").click()
    expect(page.get_by_text("Visa •••• 4242 removed.")).to_be_visible()
    expect(cards).to_have_count(1)


@pytest.mark.e2e
def test_one_click_top_up_with_saved_cards(new_page, customer, live_server, localstripe_url):
    saved_card(live_server, localstripe_url, customer, VISA)
    page = new_page()
    login(page, customer)
    page.goto("/topup")
    expect(page.get_by_label(re.compile(r"Visa •••• 4242"))).to_be_checked()
    expect(page.locator("#new-card-field")).to_be_hidden()
    page.get_by_label("$25.00").check()
    page.get_by_role("button", name=PAY).click()
    expect(page.locator("#topup-status")).to_have_text("Added $25.00. Your balance is $25.00.")
    expect(page.get_by_test_id("balance")).to_have_text("$25.00")
    assert balance(live_server.url, customer.api_key) == 2500

    # A saved card whose bank asks for 3-D Secure on this payment: the modal, then credit.
    saved_card(live_server, localstripe_url, customer, "4000002760003184")
    page.reload()
    page.get_by_label(re.compile(r"Visa •••• 3184")).check()
    page.get_by_label("$10.00").check()
    page.get_by_role("button", name=PAY).click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator("#topup-status")).to_have_text("Added $10.00. Your balance is $35.00.")
    assert balance(live_server.url, customer.api_key) == 3500

    # "A new card" shows the card form again.
    page.get_by_label("A new card").check()
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()
    shoot(page, "topup-desktop")


@pytest.mark.e2e
def test_turn_on_auto_recharge_and_complete_a_payment_the_bank_asks_for(
        app, new_page, customer, live_server, localstripe_url):
    staff = make_staff(app)
    saved_card(live_server, localstripe_url, customer, "4000002760003184")  # always asks
    status, plan = api_post(live_server.url, "/v1/price-plans", staff.api_key, {
        "name": "Usage", "currency": "usd",
        "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": 100}]})
    assert status == 201, plan
    assert api_post(live_server.url, f"/v1/accounts/{customer.account_id}/price-plan",
                    staff.api_key, {"price_plan_id": plan["id"]})[0] == 200
    assert api_post(live_server.url, f"/v1/accounts/{customer.account_id}/credits",
                    staff.api_key, {"amount": 1500, "reason": "e2e"})[0] == 201

    page = new_page()
    login(page, customer)
    page.goto("/topup")
    form = page.locator("#auto-recharge")
    expect(form.get_by_test_id("recharge-status")).to_have_text("Off")
    form.get_by_label("Turn on auto-recharge").check()
    form.get_by_label(re.compile("When credit falls below")).fill("10.00")
    form.get_by_label("Amount to add").fill("25.00")
    form.get_by_role("button", name="Save auto-recharge").click()
    expect(page.get_by_text("Auto-recharge is on: when credit falls below $10.00, Tally will "
                            "add $25.00.")).to_be_visible()
    expect(form.get_by_test_id("recharge-status")).to_have_text("On, waiting")
    shoot(page, "auto-recharge-desktop")

    for _ in range(6):  # 15.00 -> 9.00: below the threshold; the bank wants the customer
        assert api_post(live_server.url, "/v1/authorize", customer.api_key, {})[0] == 200
    page.goto("/")
    banner = page.get_by_test_id("recharge-banner")
    expect(banner).to_contain_text("Auto-recharge needs you")
    banner.get_by_role("link", name="Complete payment").click()
    expect(page).to_have_url(re.compile(r"/topup#complete-payment-card$"))
    phone = new_page(PHONE)
    login(phone, customer)
    phone.goto("/topup")
    expect(phone.locator("#complete-payment")).to_be_visible()
    shoot(phone, "complete-payment-phone")

    page.get_by_role("button", name="Complete payment").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.locator("#complete-status")).to_have_text(
        "Added $25.00. Your balance is $34.00.")
    assert balance(live_server.url, customer.api_key) == 3400
    page.reload()
    expect(page.get_by_test_id("recharge-banner")).to_have_count(0)
    expect(form.get_by_test_id("recharge-status")).to_have_text("On, waiting")
    expect(page.get_by_test_id("recharge-attempts")).to_contain_text("succeeded")
    page.set_viewport_size(DESKTOP)
    shoot(page, "topup-after-recharge-desktop")
