"""Sign-up in Chromium: the form, the link in the email, the first API key shown once, then
the dashboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import api_get, finish_sign_up


@pytest.mark.e2e
def test_sign_up_shows_first_key_once_then_dashboard(page, live_server, mail):
    page.goto("/login")
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()

    page.get_by_label("Company or project").fill("Analytical Engines")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    password_error = page.locator("#password-error")
    expect(password_error).to_have_text(re.compile(r"Use at least \d+ characters"))
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Company or project")).to_have_value("Analytical Engines")

    page.get_by_label("Password").fill("difference-engine-1843")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("body")).to_contain_text("ada@example.com")
    finish_sign_up(page, mail)

    expect(page.get_by_role("heading", name="Welcome to Tally")).to_be_visible()
    expect(page.get_by_text("Analytical Engines")).to_be_visible()
    api_key = page.get_by_test_id("new-api-key").inner_text().strip()
    assert api_key.startswith("tly_")
    status, me = api_get(live_server.url, "/v1/me", api_key)
    assert status == 200, me
    assert (me["email"], me["name"]) == ("ada@example.com", "Analytical Engines")

    page.get_by_role("link", name="Go to the dashboard").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Analytical Engines", level=1)).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("$0.00")
    expect(page.get_by_text("ada@example.com")).to_be_visible()  # logged in
    expect(page.locator("body")).not_to_contain_text(api_key)

    page.get_by_role("link", name="API keys").click()
    expect(page.locator("#keys_panel tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(api_key)
