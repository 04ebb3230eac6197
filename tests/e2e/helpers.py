"""Shared by the end-to-end tests (and tests/test_localstripe_ext.py): the browser and
its settings, test cards, and small steps (log in, type a card, call the JSON API of the
live server)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

VISA = "4242424242424242"
# The top-up button: "Pay $25.00 and add credit" once an amount is chosen, else without one.
PAY = re.compile(r"^Pay (\S+ )?and add credit$")
DECLINED = "4000000000000002"
THREE_D_SECURE = "4000002500003155"


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; skips the test where it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def login(page: Any, who: Any) -> None:
    """Log in through the real form and land on the dashboard."""
    page.goto("/login")
    page.get_by_label("Email").fill(who.email)
    page.get_by_label("Password").fill(who.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/")
    page.get_by_role("heading", level=1).wait_for()


def fill_card(page: Any, number: str, month: str = "12", year: str = "34",
              cvc: str = "123", postal_code: str = "12345") -> None:
    """Type a card into the (fake) Stripe card element, field by field."""
    for field, value in (("number", number), ("exp_month", month), ("exp_year", year),
                         ("cvc", cvc), ("postal_code", postal_code)):
        page.locator(f"#card-element input[placeholder={field}]").fill(value)


def api_get(base_url: str, path: str, api_key: str) -> tuple[int, dict[str, Any]]:
    """GET a JSON API path with an API key; returns (status, body)."""
    request = urllib.request.Request(base_url + path, headers={"X-Api-Key": api_key})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def api_post(base_url: str, path: str, api_key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST JSON to the live server with an API key; returns (status, body)."""
    request = urllib.request.Request(base_url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"X-Api-Key": api_key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def balance(base_url: str, api_key: str) -> int:
    status, body = api_get(base_url, "/v1/billing/balance", api_key)
    assert status == 200, body
    return int(body["balance"])


def open_sign_up_link(page: Any, inbox: Any) -> None:
    """After the sign-up form: the page says to check the email; open the link in the
    email that arrived (tests/conftest.py `mail`)."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    link = re.search(r"https?://\S+/signup/confirm\?token=\S+",
                     inbox.messages[-1].get_body(("plain",)).get_content()).group(0)
    page.goto(link)
    expect(page.get_by_role("heading", name="Finish creating your account")).to_be_visible()


def finish_sign_up(page: Any, inbox: Any) -> None:
    """Open the emailed link and press its button: the account is created."""
    open_sign_up_link(page, inbox)
    page.get_by_role("button", name="Create my account").click()
