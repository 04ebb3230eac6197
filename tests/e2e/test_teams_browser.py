"""Accounts that teams can live with, in Chromium: a forgotten password reset by email, an
invitation accepted with a new login, a role refused an action, a session ended from the
Account page, and two-factor authentication turned on and used to log in."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import login

NEW_PASSWORD = "a-brand-new-password"


def emailed_link(inbox: Any, path: str) -> str:
    text = inbox.messages[-1].get_body(("plain",)).get_content()
    return re.search(rf"https?://\S+{re.escape(path)}\?token=\S+", text).group(0)


@pytest.mark.e2e
def test_a_forgotten_password_is_reset_by_email(page, customer, mail, live_server):
    page.goto("/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email").fill(customer.email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_test_id("reset-sent")).to_contain_text("we sent it a link")
    page.goto(emailed_link(mail, "/password/reset"))
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    expect(page.locator(".flash")).to_contain_text("Log in with the new password")
    customer.password = NEW_PASSWORD
    login(page, customer)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


@pytest.mark.e2e
def test_an_invitation_is_accepted_and_the_role_is_enforced(page, new_page, customer, mail, live_server):
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Members").click()
    page.get_by_label("Email").fill("dev@example.com")
    page.locator("select#role").select_option("developer")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_test_id("invitation-row")).to_contain_text("dev@example.com")

    invitee = new_page()
    invitee.goto(emailed_link(mail, "/invitations/accept"))
    expect(invitee.get_by_role("heading", level=1)).to_contain_text("Join Acme 1")
    invitee.get_by_label("Your name").fill("Dev")
    invitee.get_by_label("Choose a password").fill("dev-password-123")
    invitee.get_by_role("button", name="Create login and join").click()
    expect(invitee.locator(".flash")).to_contain_text("you joined as developer")
    nav = invitee.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Top up")).to_have_count(0)
    invitee.goto("/topup")
    expect(invitee.locator("main")).to_contain_text("Your role (developer) cannot make payments")

    page.reload()
    expect(page.get_by_test_id("member-row")).to_have_count(2)


@pytest.mark.e2e
def test_a_session_is_ended_from_the_account_page(page, new_page, customer, live_server):
    phone = new_page()
    login(phone, customer)
    login(page, customer)
    page.get_by_role("link", name=customer.email).click()
    rows = page.get_by_test_id("session-row")
    expect(rows).to_have_count(2)
    rows.filter(has_not_text="this device").get_by_role("button", name="End").click()
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    phone.reload()
    expect(phone.get_by_role("heading", name="Log in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Account", exact=True)).to_be_visible()  # this one goes on


@pytest.mark.e2e
def test_two_factor_is_turned_on_and_asked_at_login(page, new_page, customer, live_server):
    login(page, customer)
    page.get_by_role("link", name=customer.email).click()
    page.get_by_role("link", name="Turn on two-factor authentication").click()
    expect(page.get_by_test_id("totp-qr").locator("svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)

    later = new_page()
    later.goto("/login")
    later.get_by_label("Email").fill(customer.email)
    later.get_by_label("Password").fill(customer.password)
    later.get_by_role("button", name="Log in").click()
    expect(later.get_by_role("heading", name="Enter your code")).to_be_visible()
    later.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))  # now's is spent
    later.get_by_role("button", name="Verify").click()
    expect(later.get_by_role("navigation", name="Main")).to_be_visible()
