"""The usage page in Chromium: a card per meter against the plan's limits, the period and
time zone, cards that htmx refreshes in place as usage arrives, threshold alerts, and the
settings form with its errors beside the field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import api_post, login


def send(live_server: Any, customer: Any, start: int, count: int, event_name: str = "api_call",
         **properties: Any) -> None:
    events = [{"id": f"{event_name}-{n}", "event_name": event_name, "properties": properties}
              for n in range(start, start + count)]
    status, body = api_post(live_server.url, "/v1/events", customer.api_key, {"events": events})
    assert status == 200 and body["accepted"] == count, body


@pytest.mark.e2e
def test_usage_cards_refresh_in_place_and_alerts_appear(page, customer, live_server):
    send(live_server, customer, 0, 120)
    send(live_server, customer, 0, 2, "llm_completion", tokens=2500)
    send(live_server, customer, 0, 1, "storage_usage", bytes=5_000_000)
    page.clock.install()  # the cards poll every 30 s; the test moves the clock instead
    login(page, customer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.get_by_test_id("period")).to_contain_text("time zone UTC")

    calls = page.get_by_test_id("meter-apiCalls")
    expect(calls.get_by_test_id("meter-current")).to_have_text("120 calls")
    expect(calls).to_contain_text("of 1,000 calls")
    expect(calls.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "12")
    tokens = page.get_by_test_id("meter-llmTokens")
    expect(tokens.get_by_test_id("meter-current")).to_have_text("5,000 tokens")
    expect(tokens.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "50")
    expect(page.get_by_test_id("meter-storage")).to_contain_text("4.8 MiB of 100 MiB")
    expect(calls.get_by_role("heading")).to_have_text("API calls")
    page.evaluate("window.__marker = 'no-reload'")

    # 700 more calls: 82% of the limit. The next poll redraws the cards and the alert.
    send(live_server, customer, 120, 700)
    page.clock.run_for("00:31")
    expect(calls.get_by_test_id("meter-current")).to_have_text("820 calls")
    expect(calls).to_have_class(re.compile(r"\bmeter-near\b"))
    alert = page.get_by_role("status").filter(has_text="API calls passed 80% of this period's limit on ")
    expect(alert).to_contain_text(re.compile(r" at \d\d:\d\d UTC \(820 of 1,000 calls\)\."))
    assert page.evaluate("window.__marker") == "no-reload"

    # Over the limit: the card says calls are refused, and the dashboard shows the alert.
    send(live_server, customer, 820, 180)
    page.clock.run_for("00:31")
    expect(calls).to_have_class(re.compile(r"\bmeter-over\b"))
    expect(calls).to_contain_text("Limit reached")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_test_id("usage-alert").first).to_contain_text("API calls reached 100%")
    shoot_both(page, "17-dashboard-alert")
    page.goto("/usage")
    shoot_both(page, "18-usage-alert")


def shoot_both(page: Any, name: str) -> None:
    """Screenshots at desktop and phone widths, back at desktop after."""
    from tests.e2e.helpers import DESKTOP, PHONE, SCREENSHOTS
    from tests.e2e.test_screenshots import shoot

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shoot(page, name, "desktop")
    page.set_viewport_size(PHONE)
    shoot(page, name, "phone")
    page.set_viewport_size(DESKTOP)


@pytest.mark.e2e
def test_settings_errors_show_beside_the_field_and_the_time_zone_applies(page, customer, live_server):
    login(page, customer)
    page.goto("/usage")
    page.get_by_label("Time zone").fill("Mars/Olympus")
    page.get_by_label("Monthly spend cap").fill("-5")
    page.get_by_role("button", name="Save settings").click()
    # Both faults are marked at once, each beside its field, and what was typed stays.
    expect(page.locator(".field", has=page.get_by_label("Time zone"))).to_contain_text(
        "Enter a time zone name such as Europe/Paris")
    expect(page.locator(".field", has=page.get_by_label("Monthly spend cap"))).to_contain_text(
        "can't be below zero")
    expect(page.get_by_label("Time zone")).to_have_value("Mars/Olympus")
    expect(page.get_by_test_id("period")).to_contain_text("time zone UTC")

    page.get_by_label("Time zone").fill("Asia/Tokyo")
    page.get_by_label("Monthly spend cap").fill("25")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_test_id("period")).to_contain_text("time zone Asia/Tokyo")
    expect(page.get_by_label("Monthly spend cap")).to_have_value("25.00")


@pytest.mark.e2e
def test_priced_usage_shows_spend_against_the_cap(app, page, customer, live_server):
    from tests.e2e.helpers import PHONE, SCREENSHOTS
    from tests.e2e.test_screenshots import shoot
    from tests.support.staff import make_staff

    staff = make_staff(app)
    _, plan = api_post(live_server.url, "/v1/price-plans", staff.api_key, {
        "name": "Per call", "currency": "usd",
        "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": 2}]})
    api_post(live_server.url, f"/v1/accounts/{customer.account_id}/price-plan", staff.api_key,
             {"price_plan_id": plan["id"]})
    api_post(live_server.url, f"/v1/accounts/{customer.account_id}/credits", staff.api_key,
             {"amount": 1000, "reason": "Welcome credit"})
    api_post(live_server.url, "/v1/billing/settings", customer.api_key, {"spend_cap": 100})
    send(live_server, customer, 0, 45)  # 45 calls at 0.02: 0.90 of a 1.00 cap

    login(page, customer)
    expect(page.get_by_test_id("spend-alert")).to_contain_text("90% of your monthly spend cap")
    expect(page.get_by_test_id("balance")).to_have_text("$9.10")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    spend = page.get_by_test_id("spend")
    expect(spend.get_by_test_id("spend-amount")).to_have_text("$0.90")
    expect(spend).to_contain_text("of a $1.00 cap")
    expect(spend.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "90")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shoot(page, "16-usage-priced", "desktop")
    page.set_viewport_size(PHONE)
    shoot(page, "16-usage-priced", "phone")
