"""Email notifications through the outbox, to a real SMTP server on loopback: low balance
once per crossing, receipts with their PDF, security notices that cannot be turned off,
usage alerts, preferences on the Account page, and the staff view of a customer's emails."""

from __future__ import annotations

import pytest

from tests.conftest import login, text_of
from tests.support.staff import make_staff, staff_login
from tests.test_auto_recharge import app_config, balance, save_card, spend, turn_on  # noqa: F401
from tests.test_rated_usage import grant, priced

pytestmark = pytest.mark.money


@pytest.fixture
def staff(app):
    return make_staff(app)


def subjects(mail) -> list[str]:
    return [m["Subject"] for m in mail.messages]


def set_preferences(client, customer, **form):
    web = client.application.test_client()
    token = login(web, customer)
    page = web.get("/account").get_data(as_text=True)
    assert "Email notifications" in page and "Security notices" in page
    answer = web.post("/account/notifications", data={"csrf_token": token, **form})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return web


def test_low_balance_is_sent_once_per_crossing(app, client, staff, customer, mail, backend):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 100})
    grant(client, staff, customer, 1500)
    set_preferences(client, customer, low_balance_threshold="10.00",
                    **{f"notify_{k}": "on" for k in ("low_balance", "receipts")})
    spend(client, customer, 5)
    assert "Your Tally credit is running low" not in subjects(mail)
    spend(client, customer, 3)  # 15.00 -> 7.00: one notice, not one per call
    assert subjects(mail).count("Your Tally credit is running low") == 1
    low = next(m for m in mail.messages if m["Subject"] == "Your Tally credit is running low")
    assert "$9.00" in text_of(low) and "/topup" in text_of(low)
    assert low.get_body(("html",)) is not None and "href=" in low.get_body(("html",)).get_content()
    grant(client, staff, customer, 1000)  # 17.00: above again, the next crossing counts
    spend(client, customer, 8)
    assert subjects(mail).count("Your Tally credit is running low") == 2


def test_turned_off_kinds_are_not_sent_but_security_notices_always_are(app, client, staff,
                                                                       customer, mail, backend):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 100})
    grant(client, staff, customer, 1500)
    save_card(client, customer)
    set_preferences(client, customer, notify_receipts="on")  # every other kind off
    assert turn_on(client, customer).status_code == 200
    spend(client, customer, 6)
    assert balance(client, customer) == 900 + 2500  # recharged, without an email about it
    assert not any("Auto-recharge" in s for s in subjects(mail))
    assert any(s.startswith("Your Tally receipt") for s in subjects(mail))
    created = client.post("/v1/keys", headers=customer.headers, json={"name": "CI"})
    plaintext = created.get_json()["api_key"]
    notice = [m for m in mail.messages if m["Subject"] == "An API key was created on your Tally account"]
    assert len(notice) == 1 and plaintext not in notice[0].as_string()
    assert created.get_json()["key"]["prefix"] in text_of(notice[0])
    client.post("/v1/keys/rotate", headers=customer.headers, json={})
    assert "An API key was rotated on your Tally account" in subjects(mail)


def test_a_top_up_receipt_carries_its_pdf(app, client, customer, mail, backend):
    pm = save_card(client, customer)
    paid = client.post("/v1/billing/payment-intents", headers=customer.headers,
                       json={"amount": 2500, "payment_method_id": pm})
    assert paid.get_json()["credited"] is True
    receipt = next(m for m in mail.messages if m["Subject"].startswith("Your Tally receipt"))
    assert "$25.00" in text_of(receipt) and "/billing/invoices/inv_" in text_of(receipt)
    pdfs = [p for p in receipt.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")


def test_usage_alerts_email_once_per_threshold(app, client, customer, mail, tmp_path):
    from tests.conftest import write_plans
    app.config["TALLY_CONFIG_FILE"] = write_plans(tmp_path / "p.json", free={
        "apiCalls": 10, "requestsPerMinute": 10**6})
    from services.billing import plans
    plans.init_app(app)
    spend(client, customer, 9)
    assert subjects(mail).count("Your apiCalls usage is at 80% of your plan's limit") == 1
    spend(client, customer, 3)
    assert subjects(mail).count("Your apiCalls usage reached your plan's limit") == 1


def test_staff_see_a_customers_emails_and_recharge_attempts(app, client, staff, customer, mail):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 100})
    grant(client, staff, customer, 1500)
    save_card(client, customer, "pm_card_chargeCustomerFail")
    assert turn_on(client, customer).status_code == 200
    spend(client, customer, 6)
    web = app.test_client()
    staff_login(web, staff)
    from sqlalchemy import select

    from extensions import db
    from models import Account
    with app.app_context():
        customer_id = db.session.scalar(select(Account.customer_id).where(
            Account.id == customer.account_id))
        db.session.remove()
    page = web.get(f"/staff/customers/{customer_id}").get_data(as_text=True)
    assert "Emails to this customer" in page
    assert "Auto-recharge failed: your card was declined" in page
    assert "declined" in page and 'data-testid="staff-recharge-attempts"' in page
