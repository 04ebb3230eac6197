"""A page left open while the session ends (the same person chose "Log out everywhere" in
another browser): the next action lands on the login page, says why, and after
logging in returns to the page. Never a login page inside a panel, never a confusing
"Try again" that cannot work."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import PAY, VISA, balance, fill_card, login

SESSION_ENDED = "Your session has ended. Log in again to continue."


def end_every_session(new_page: Any, customer: Any) -> None:
    """Log in in another browser context and "Log out everywhere": every session ends."""
    elsewhere = new_page()
    login(elsewhere, customer)
    elsewhere.get_by_role("link", name=customer.email).click()
    elsewhere.get_by_role("button", name="Log out everywhere").click()
    expect(elsewhere.get_by_role("heading", name="Log in")).to_be_visible()


def log_in_again(page: Any, customer: Any) -> None:
    page.get_by_label("Email").fill(customer.email)
    page.get_by_label("Password").fill(customer.password)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.e2e
def test_creating_a_key_after_the_session_ended_goes_to_login_and_back(
        page, new_page, customer, live_server):
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()

    end_every_session(new_page, customer)
    page.get_by_label("New key").fill("CI runner")
    page.get_by_role("button", name="Create key").click()

    expect(page).to_have_url(re.compile(r"/login\?next=/keys$"))
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    flash = page.locator(".flash")
    expect(flash).to_have_text(SESSION_ENDED)
    expect(flash).to_have_class(re.compile(r"\bflash-info\b"))  # information, not success
    expect(page.locator(".testmode")).to_have_count(1)  # one page, not one inside another
    expect(page.locator(".topbar")).to_have_count(1)
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)

    log_in_again(page, customer)
    expect(page).to_have_url(re.compile(r"/keys$"))
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    expect(page.locator("#keys_panel tbody tr")).to_have_count(1)  # "CI runner" was not made
    expect(page.locator(".flash")).to_have_count(0)


@pytest.mark.e2e
def test_paying_after_the_session_ended_says_so_with_a_link_to_log_in(
        page, new_page, customer, live_server):
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Top up").click()
    expect(page.locator("#card-element input[placeholder=number]")).to_be_visible()
    fill_card(page, VISA)

    end_every_session(new_page, customer)
    page.get_by_role("button", name=PAY).click()

    status = page.locator("#topup-status")
    expect(status).to_have_text(SESSION_ENDED)
    expect(status).not_to_contain_text("Try again")
    expect(page.get_by_role("button", name=PAY)).to_be_enabled()
    assert balance(live_server.url, customer.api_key) == 0

    status.get_by_role("link", name="Log in again").click()
    expect(page).to_have_url(re.compile(r"/login\?next=/topup$"))
    log_in_again(page, customer)
    expect(page).to_have_url(re.compile(r"/topup$"))
    expect(page.get_by_role("heading", name="Top up credit")).to_be_visible()
