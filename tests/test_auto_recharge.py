"""Auto-recharge against the simulator: settings and their bounds, the trigger (the gate
crossing the threshold), exactly one charge however many calls cross at once, declines
with backoff until it turns itself off, 3-D Secure completed on the page, the monthly
limit, and the customer's emails."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from extensions import db
from interfaces import jobs
from models import LedgerEntry, RechargeAttempt
from models.base import utcnow
from tests.conftest import text_of, write_plans
from tests.support.payments import confirm_setup
from tests.support.staff import make_staff
from tests.support.threads import at_once
from tests.test_concurrency import post
from tests.test_rated_usage import grant, priced

pytestmark = pytest.mark.money

PER_CALL = 100  # each gate call costs 1.00 of credit


@pytest.fixture
def app_config(tmp_path):
    """Room for the calls these tests make in a minute."""
    return {"TALLY_CONFIG_FILE": write_plans(tmp_path / "plans.json", free={
        "apiCalls": 10**9, "requestsPerMinute": 10**6})}


@pytest.fixture
def staff(app):
    return make_staff(app)


def settings(client, customer):
    answer = client.get("/v1/billing/auto-recharge", headers=customer.headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def turn_on(client, customer, **fields):
    body = {"enabled": True, "threshold": 1000, "method": "fixed", "amount": 2500} | fields
    return client.post("/v1/billing/auto-recharge", headers=customer.headers, json=body)


def save_card(client, customer, pm="pm_card_visa") -> str:
    saved = client.post("/v1/payment-methods", headers=customer.headers,
                        json={"payment_method_id": pm})
    assert saved.status_code == 201, saved.get_json()
    return saved.get_json()["id"]


def spend(client, customer, calls: int) -> list[int]:
    return [client.post("/v1/authorize", headers=customer.headers, json={}).status_code
            for _ in range(calls)]


def balance(client, customer) -> int:
    return client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"]


def topups(app, account_id) -> list[int]:
    with app.app_context():
        amounts = list(db.session.execute(select(LedgerEntry.amount).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind == "topup")).scalars())
        db.session.remove()
    return amounts


@pytest.fixture
def metered(client, staff, customer):
    """The customer pays 1.00 per gate call and has 15.00 of credit."""
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit",
                                     "unit_amount": PER_CALL})
    grant(client, staff, customer, 1500)
    return customer


def test_settings_are_validated_and_need_a_usable_card(client, make_customer):
    customer, other = make_customer("Owner"), make_customer("Other")
    assert settings(client, customer) == {
        "enabled": False, "threshold": 0, "method": "fixed", "amount": None, "target": None,
        "payment_method_id": None, "monthly_limit": None, "status": "disabled",
        "consecutive_failures": 0, "last_attempt": None}
    no_card = turn_on(client, customer)
    assert no_card.status_code == 400 and no_card.get_json()["param"] == "payment_method_id"
    theirs = save_card(client, other)
    save_card(client, customer)
    for fields, param in (({"amount": None}, "amount"), ({"amount": 100}, "amount"),
                          ({"method": "target", "target": 1200}, "target"),
                          ({"threshold": -1}, "threshold"), ({"monthly_limit": 10}, "monthly_limit"),
                          ({"payment_method_id": theirs}, "payment_method_id"),
                          ({"method": "both"}, "method")):
        refused = turn_on(client, customer, **fields)
        assert refused.status_code == 400, (fields, refused.get_json())
        assert refused.get_json()["param"] == param, (fields, refused.get_json())
    assert settings(client, customer)["enabled"] is False
    on = turn_on(client, customer, threshold=0, monthly_limit=10000)  # no credit, none below 0
    assert on.status_code == 200, on.get_json()
    assert on.get_json() | {"last_attempt": None} == {
        "enabled": True, "threshold": 0, "method": "fixed", "amount": 2500, "target": None,
        "payment_method_id": None, "monthly_limit": 10000, "status": "idle",
        "consecutive_failures": 0, "last_attempt": None}
    off = client.post("/v1/billing/auto-recharge", headers=customer.headers,
                      json={"enabled": False, "threshold": 1000})
    assert off.get_json()["status"] == "disabled"


def test_crossing_the_threshold_recharges_once_and_emails(app, client, metered, mail, backend):
    customer = metered
    save_card(client, customer)
    assert turn_on(client, customer).status_code == 200
    assert spend(client, customer, 5) == [200] * 5
    assert balance(client, customer) == 1000 and topups(app, customer.account_id) == []
    assert spend(client, customer, 1) == [200]  # 9.00 < 10.00: one recharge of 25.00
    assert balance(client, customer) == 900 + 2500
    state = settings(client, customer)
    assert state["status"] == "idle" and state["consecutive_failures"] == 0
    assert state["last_attempt"]["amount"] == 2500
    assert state["last_attempt"]["outcome"] == "succeeded"
    assert spend(client, customer, 20) == [200] * 20  # down to 14.00: above the threshold
    assert topups(app, customer.account_id) == [2500]
    ledger = client.get("/v1/billing/ledger", headers=customer.headers).get_json()["data"]
    assert [e["kind"] for e in ledger].count("topup") == 1
    sent = [m for m in mail.messages if "Auto-recharge" in m["Subject"]]
    assert [m["Subject"] for m in sent] == ["Auto-recharge added $25.00 to your Tally credit"]
    assert "/topup" in text_of(sent[0])
    assert sent[0].get_body(("html",)) is not None


def test_target_brings_credit_up_to_it(app, client, metered, backend):
    customer = metered
    save_card(client, customer)
    assert turn_on(client, customer, method="target", amount=None, target=5000).status_code == 200
    spend(client, customer, 6)
    assert balance(client, customer) == 5000
    assert topups(app, customer.account_id) == [4100]


def test_a_declined_card_backs_off_and_turns_itself_off_after_three(app, client, metered, mail,
                                                                    backend):
    customer = metered
    save_card(client, customer, "pm_card_chargeCustomerFail")
    assert turn_on(client, customer).status_code == 200
    spend(client, customer, 6)
    state = settings(client, customer)
    assert state["consecutive_failures"] == 1 and state["status"] == "idle"
    assert state["last_attempt"]["outcome"] == "declined"
    spend(client, customer, 2)  # still low, but the next try waits for its backoff
    assert settings(client, customer)["consecutive_failures"] == 1
    with app.app_context():
        jobs.deliver_outbox(now=utcnow() + timedelta(minutes=31))
        assert settings(client, customer)["consecutive_failures"] == 2
        jobs.deliver_outbox(now=utcnow() + timedelta(hours=3))
        db.session.remove()
    state = settings(client, customer)
    assert state["enabled"] is False and state["status"] == "disabled"
    assert state["consecutive_failures"] == 3
    assert balance(client, customer) == 1500 - 8 * PER_CALL and topups(app, customer.account_id) == []
    subjects = [m["Subject"] for m in mail.messages if "uto-recharge" in m["Subject"]]
    assert subjects == ["Auto-recharge failed: your card was declined"] * 2 + [
        "Auto-recharge turned off after 3 failed attempts"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RechargeAttempt)) == 3
        db.session.remove()


def test_a_card_that_needs_3d_secure_waits_for_the_customer(app, client, metered, mail,
                                                            localstripe_url, backend):
    customer = metered
    seti = client.post("/v1/billing/setup-intents", headers=customer.headers).get_json()
    # 4000 0027 6000 3184 asks for authentication on every payment, off session too.
    saved = confirm_setup(localstripe_url, seti["client_secret"], "4000002760003184",
                          authenticate=True)
    save_card(client, customer, saved["payment_method"])
    assert turn_on(client, customer).status_code == 200
    spend(client, customer, 6)
    state = settings(client, customer)
    assert state["status"] == "requires_action" and state["consecutive_failures"] == 1
    assert balance(client, customer) == 900 and topups(app, customer.account_id) == []
    assert any("needs you" in m["Subject"] for m in mail.messages)
    # "Complete payment": Stripe.js confirms the PaymentIntent with the card, 3-D Secure.
    with app.app_context():
        attempt = db.session.execute(select(RechargeAttempt)).scalar_one()
        pi, pm = attempt.payment_intent_id, attempt.payment_method_id
        db.session.remove()
    secret = client.get("/topup").status_code and _secret(app, customer, pi)
    for path in (f"/js.stripe.com/tally/payment_intents/{pi}/confirm",
                 f"/v1/payment_intents/{pi}/_authenticate?success=true"):
        body = {"key": "pk_test_tally", "client_secret": secret}
        if path.endswith("confirm"):
            body["payment_method"] = pm
        urllib.request.urlopen(urllib.request.Request(
            localstripe_url + path, data=json.dumps(body).encode(), method="POST"), timeout=10)
    confirmed = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                            json={"payment_intent_id": pi})
    assert confirmed.get_json()["credited"] is True
    state = settings(client, customer)
    assert state["status"] == "idle" and state["consecutive_failures"] == 0
    assert state["last_attempt"]["outcome"] == "succeeded"
    assert balance(client, customer) == 900 + 2500


def _secret(app, customer, pi) -> str:
    from models import Account
    from services.ledger import topups as topup_service
    with app.app_context():
        secret = topup_service.client_secret(db.session.get(Account, customer.account_id), pi)
        db.session.remove()
    assert secret
    return secret


def test_a_recharge_past_the_monthly_limit_is_not_made(app, client, metered, mail, backend):
    customer = metered
    save_card(client, customer)
    assert turn_on(client, customer, monthly_limit=3000).status_code == 200
    spend(client, customer, 6)
    assert topups(app, customer.account_id) == [2500]
    spend(client, customer, 25)  # 34.00 -> 9.00: the next 25.00 would make 50.00 this month
    assert topups(app, customer.account_id) == [2500]
    state = settings(client, customer)
    assert state["last_attempt"]["outcome"] == "monthly_limit" and state["enabled"] is True
    assert any("monthly limit" in text_of(m) for m in mail.messages)


def test_fifty_calls_crossing_at_once_make_one_charge(app, live_server, client, staff, customer,
                                                      backend):
    """50 gate calls cross the threshold at the same moment, each in its own transaction on
    the live server's threads: one claims the attempt, one charge is made, credited once."""
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 10})
    grant(client, staff, customer, 1500)
    save_card(client, customer)
    assert turn_on(client, customer).status_code == 200
    spend(client, customer, 40)  # 11.00 left; the 50 calls spend 5.00 and cross at 10.00
    results = at_once([lambda: post(f"{live_server.url}/v1/authorize", b"{}", customer.headers)
                       for _ in range(50)])
    assert [status for status, _ in results] == [200] * 50
    assert topups(app, customer.account_id) == [2500]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RechargeAttempt)) == 1
        db.session.remove()
    assert balance(client, customer) == 1500 - 90 * 10 + 2500
    assert settings(client, customer)["status"] == "idle"
