"""A verified email: until then a person can look around and create keys but not pay or
raise limits (the page says so, and why); a change of email takes effect only once the
new address is verified, with a notice to the old one. And staff see a customer's
members and pick whom to view as."""

from __future__ import annotations

import re

from extensions import db
from models import Account
from services import uow
from services.identity import accounts
from tests.conftest import PASSWORD, Customer, login, text_of
from tests.support.members import add_member
from tests.support.staff import make_staff, staff_login, user_id_of


def verify_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/account/email/verify\?token=\S+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)


def unverified_customer(app) -> Customer:
    with app.app_context():
        with uow.unit():
            made = accounts.sign_up(email="new@example.com", password=PASSWORD, name="New Co",
                                    verified=False)
        account_id = made.account.id
        db.session.remove()
    return Customer("new@example.com", PASSWORD, account_id, made.api_key)


def test_until_verified_paying_is_held_back_and_the_page_says_why(app, client, mail):
    who = unverified_customer(app)
    token = login(client, who)
    dashboard = client.get("/").get_data(as_text=True)
    assert 'data-testid="unverified-banner"' in dashboard
    assert "top-ups, plan changes, cards and the spend cap are held back" in dashboard
    refused = client.get("/topup")
    assert refused.status_code == 403 and "Verify your email address first" in refused.get_data(as_text=True)
    assert client.post("/keys", data={"kind": "usage", "csrf_token": token}).status_code == 200
    api = client.post("/v1/billing/payment-intents", headers=who.headers, json={"amount": 1000})
    assert api.status_code == 403 and api.get_json()["code"] == "email_not_verified"

    assert client.post("/account/email/verify", data={"csrf_token": token}).status_code == 303
    # The key created above sent its security notice too; the verification is the other one.
    [message] = [m for m in mail.messages if "/account/email/verify?token=" in text_of(m)]
    assert message["To"] == who.email
    done = client.get(verify_link(message))
    assert done.status_code == 303
    assert 'data-testid="unverified-banner"' not in client.get("/").get_data(as_text=True)
    assert client.get("/topup").status_code == 200


def test_a_new_email_takes_effect_once_verified(app, client, customer, mail):
    token = login(client, customer)
    wrong = client.post("/account/email", data={"email": "moved@example.com",
                                                "password": "not-my-password", "csrf_token": token})
    assert wrong.status_code == 400 and mail.messages == []
    asked = client.post("/account/email", data={"email": "moved@example.com", "password": PASSWORD,
                                                "csrf_token": token})
    assert asked.status_code == 303
    to_new, to_old = mail.messages
    assert to_new["To"] == "moved@example.com" and to_old["To"] == customer.email
    assert "moved@example.com" in text_of(to_old) and "/account/email/verify" not in text_of(to_old)
    account_page = client.get("/account").get_data(as_text=True)
    assert f"Logged in as <strong>{customer.email}</strong>" in account_page
    assert "Changing to <strong>moved@example.com</strong>" in account_page
    assert client.get(verify_link(to_new)).status_code == 303
    assert "Logged in as <strong>moved@example.com</strong>" in client.get("/account").get_data(as_text=True)
    login(app.test_client(), Customer("moved@example.com", PASSWORD, customer.account_id, ""))


def test_staff_see_members_and_view_as_the_member_they_pick(app, client, make_customer):
    acme, beta = make_customer("Acme"), make_customer("Beta")
    add_member(app, beta.account_id, "viewer", acme.email)  # Acme's owner is Beta's viewer
    staff = make_staff(app)
    csrf = staff_login(client, staff)
    with app.app_context():
        beta_customer = db.session.get(Account, beta.account_id).customer_id
        db.session.remove()
    page = client.get(f"/staff/customers/{beta_customer}").get_data(as_text=True)
    assert 'data-testid="staff-member" data-email="beta2@example.com"' in page
    assert f'data-email="{acme.email}"' in page and ">viewer<" in page
    user_id = user_id_of(app, acme.email)
    started = client.post(f"/staff/users/{user_id}/impersonate", data={
        f"{user_id}-imp-reason": "Ticket 7: what does the viewer see", "customer_id": beta_customer,
        f"{user_id}-imp-csrf_token": csrf})
    assert started.status_code == 303
    dashboard = client.get("/").get_data(as_text=True)
    assert "Beta 2" in dashboard and ">Top up<" not in dashboard  # Beta, as its viewer
    assert client.get("/topup").status_code == 403
