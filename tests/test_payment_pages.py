"""The pages of saved cards and auto-recharge, through the test client: what a customer
sees and what the forms do (the browser flows are in tests/e2e)."""

from __future__ import annotations

import pytest

from tests.conftest import login
from tests.support.staff import make_staff
from tests.test_auto_recharge import app_config, save_card, settings, spend  # noqa: F401
from tests.test_rated_usage import grant, priced


@pytest.fixture
def web(client, customer):
    web = client.application.test_client()
    web.token = login(web, customer)
    return web


def test_cards_page_lists_defaults_and_removes(client, customer, web):
    assert "No saved cards yet." in web.get("/payment-methods").get_data(as_text=True)
    first = save_card(client, customer)
    second = save_card(client, customer, "pm_card_mastercard")
    page = web.get("/payment-methods").get_data(as_text=True)
    assert "Visa</strong> •••• 4242" in page and "Mastercard</strong> •••• 4444" in page
    assert page.count(">Default<") == 1
    made = web.post(f"/payment-methods/{second}/default", data={"csrf_token": web.token})
    assert made.status_code == 303
    cards = client.get("/v1/payment-methods", headers=customer.headers).get_json()["data"]
    assert [c["id"] for c in cards if c["default"]] == [second]
    removed = web.post(f"/payment-methods/{first}/remove", data={"csrf_token": web.token})
    assert removed.status_code == 303
    page = web.get("/payment-methods").get_data(as_text=True)
    assert "removed" in page and "4242" not in page.split("Saved cards")[1].split("Add a card")[0]


def test_auto_recharge_form_on_the_top_up_page(app, client, customer, web):
    page = web.get("/topup").get_data(as_text=True)
    assert "Auto-recharge" in page and "Save a card first" in page
    refused = web.post("/topup/auto-recharge", data={
        "csrf_token": web.token, "enabled": "on", "threshold": "10", "method": "fixed",
        "amount": "25"}, follow_redirects=True)
    assert "Auto-recharge not saved" in refused.get_data(as_text=True)
    save_card(client, customer)
    saved = web.post("/topup/auto-recharge", data={
        "csrf_token": web.token, "enabled": "on", "threshold": "0", "method": "fixed",
        "amount": "25.00", "monthly_limit": "100"}, follow_redirects=True)
    text = saved.get_data(as_text=True)
    assert "Auto-recharge is on: when credit falls below $0.00, Tally will add $25.00." in text
    assert "Visa •••• 4242" in text  # pay with the saved card in one click
    assert settings(client, customer) | {"last_attempt": None} == {
        "enabled": True, "threshold": 0, "method": "fixed", "amount": 2500, "target": None,
        "payment_method_id": None, "monthly_limit": 10000, "status": "idle",
        "consecutive_failures": 0, "last_attempt": None}


def test_a_recharge_waiting_for_the_customer_shows_a_banner(app, client, customer, web,
                                                             localstripe_url):
    from tests.support.payments import confirm_setup
    staff = make_staff(app)
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 100})
    grant(client, staff, customer, 1500)
    seti = client.post("/v1/billing/setup-intents", headers=customer.headers).get_json()
    card = confirm_setup(localstripe_url, seti["client_secret"], "4000002760003184",
                         authenticate=True)
    save_card(client, customer, card["payment_method"])
    client.post("/v1/billing/auto-recharge", headers=customer.headers,
                json={"enabled": True, "threshold": 1000, "amount": 2500})
    spend(client, customer, 6)
    dashboard = web.get("/").get_data(as_text=True)
    assert 'data-testid="recharge-banner"' in dashboard and "Complete payment" in dashboard
    topup = web.get("/topup").get_data(as_text=True)
    assert 'id="complete-payment"' in topup and "_secret_" in topup
    activity = web.get("/activity").get_data(as_text=True)
    assert "Auto-recharge attempts" in activity and "$25.00 · requires action" in activity
