"""Small things a customer sees: long names without spaces wrap instead of widening the
page, a paid custom amount is cleared (a second click cannot pay it again), and the
404 page is Tally's own."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from extensions import db
from services import uow
from services.identity import accounts
from tests.conftest import PASSWORD, Customer
from tests.e2e.helpers import DESKTOP, PAY, PHONE, VISA, balance, fill_card, login
from tests.support.wallets import Wallet

LONG_COMPANY = "Supercalifragilistic" * 10  # 200 characters, the most signup takes
LONG_KEY = "production-eu-west-" * 5 + "x" * 5  # 100 characters, the most the form takes
CUSTOMER_PAGES = ["/", "/keys", "/usage", "/topup", "/invoices", "/plans", "/account", "/docs/api"]


@pytest.fixture
def long_named(app) -> Customer:
    email = "a.very.long.mailbox.name.without.any.spaces.at.all@long-company-domain.example.com"
    with app.app_context():
        with uow.unit():
            result = accounts.sign_up(email=email, password=PASSWORD, name=LONG_COMPANY)
        account_id = result.account.id
        db.session.remove()
    return Customer(email, PASSWORD, account_id, result.api_key)


def page_width(page: Any) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.e2e
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_long_names_never_make_a_page_wider_than_the_window(app, new_page, long_named, viewport):
    wallet = Wallet()  # a 42-character address on the Account page
    assert app.test_client().post("/v1/wallets", json=wallet.proof(),
                                  headers=long_named.headers).status_code == 201
    page = new_page(viewport=viewport)
    login(page, long_named)
    expect(page.get_by_role("heading", level=1)).to_have_text(LONG_COMPANY)
    page.goto("/keys")
    page.get_by_label("New key").fill(LONG_KEY)
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("new-api-key")).to_be_visible()
    expect(page.locator("#keys_panel tbody")).to_contain_text(LONG_KEY)

    for path in CUSTOMER_PAGES:
        page.goto(path)
        page.get_by_role("heading", level=1).first.wait_for()
        assert page_width(page) <= viewport["width"], (path, page_width(page), viewport)


@pytest.mark.e2e
def test_a_paid_custom_amount_is_cleared_so_a_second_click_cannot_pay_it_again(
        page, customer, live_server):
    login(page, customer)
    page.goto("/topup")
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()
    page.get_by_label("Or another amount (USD)").fill("12.50")
    fill_card(page, VISA)
    page.get_by_role("button", name=PAY).click()
    expect(page.locator("#topup-status")).to_have_text("Added $12.50. Your balance is $12.50.")
    expect(page.get_by_label("Or another amount (USD)")).to_have_value("")

    page.get_by_role("button", name=PAY).click()  # nothing chosen now
    expect(page.locator("#amount-error")).to_be_visible()
    assert balance(live_server.url, customer.api_key) == 1250


@pytest.mark.e2e
def test_a_missing_page_is_talleys_page_with_a_way_back(page, customer):
    login(page, customer)
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Page not found", level=1)).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("If you entered the URL manually")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page.get_by_test_id("balance")).to_be_visible()
