"""The API keys page in Chromium: rotating a key (htmx, with a confirm dialog) shows the
new key once, and the old key stops working at once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import api_get, login


@pytest.mark.e2e
def test_rotate_key_shows_new_key_once_and_old_key_stops(page, customer, live_server):
    assert api_get(live_server.url, "/v1/me", customer.api_key)[0] == 200
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    rows = page.locator("#keys_panel tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("code")).to_have_text(customer.api_key[:12] + "…")
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    page.evaluate("window.__marker = 'no-reload'")

    # Cancelling the confirmation changes nothing.
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    rows.first.get_by_role("button", name="Rotate").click()
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    assert dialogs and re.fullmatch(
        r"Rotate tly_\S+…\? The old key stops working immediately\.", dialogs[0]), dialogs
    assert api_get(live_server.url, "/v1/me", customer.api_key)[0] == 200

    # Accepting rotates: the new key is shown, in full, in place.
    page.once("dialog", lambda dialog: dialog.accept())
    rows.first.get_by_role("button", name="Rotate").click()
    new_key_box = page.get_by_test_id("new-api-key")
    expect(new_key_box).to_be_visible()
    expect(page.locator(".newkey")).to_contain_text("shown only once")
    new_key = new_key_box.inner_text().strip()
    assert new_key.startswith("tly_") and new_key != customer.api_key
    expect(rows).to_have_count(1)
    expect(rows.first.locator("code")).to_have_text(new_key[:12] + "…")
    assert page.evaluate("window.__marker") == "no-reload"  # swapped by htmx, not reloaded
    # It names the key it replaced, and Copy puts it on the clipboard.
    expect(page.locator(".newkey")).to_contain_text("Your new API key for “Default key”")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == new_key

    old_status, old_body = api_get(live_server.url, "/v1/me", customer.api_key)
    assert old_status == 401, old_body
    new_status, me = api_get(live_server.url, "/v1/me", new_key)
    assert new_status == 200, me
    assert me["email"] == customer.email

    # Shown once: a fresh load of the page lists the key by its prefix only.
    page.reload()
    expect(rows).to_have_count(1)
    expect(page.get_by_test_id("new-api-key")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(new_key)
