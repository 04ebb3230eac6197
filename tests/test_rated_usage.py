"""Usage-based pricing end to end: usage rated as it arrives (the gate and ingestion),
drawn from prepaid credit, the spend cap, closed days on the ledger, the monthly usage
statement, and grants consumed soonest-expiry first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from extensions import db
from models import Invoice, LedgerEntry
from models.base import utcnow
from models.billing import INVOICE_STATEMENT
from services import uow
from services.identity import accounts
from services.identity import keys as key_service
from services.ledger import entries as ledger
from services.ledger import grants
from services.usage import period_close
from tests.conftest import Customer, login
from tests.support.staff import make_staff
from tests.support.threads import at_once
from tests.test_concurrency import post

GRADUATED = [{"up_to": 100, "unit_amount": 10, "flat_amount": 0},
             {"up_to": 1000, "unit_amount": 5, "flat_amount": 100},
             {"up_to": None, "unit_amount": 1, "flat_amount": 0}]


@pytest.fixture
def staff(app):
    return make_staff(app)


def priced(client, staff, customer, *charges: dict) -> str:
    """Create a price plan with these charges and put the customer's account on it."""
    plan = client.post("/v1/price-plans", headers=staff.headers, json={
        "name": "Usage", "currency": "usd", "charges": list(charges)})
    assert plan.status_code == 201, plan.get_json()
    assigned = client.post(f"/v1/accounts/{customer.account_id}/price-plan", headers=staff.headers,
                           json={"price_plan_id": plan.get_json()["id"]})
    assert assigned.status_code == 200
    return plan.get_json()["id"]


def grant(client, staff, customer, amount: int, **extra) -> dict:
    response = client.post(f"/v1/accounts/{customer.account_id}/credits", headers=staff.headers,
                           json={"amount": amount, "reason": "Test credit", **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def balance(client, customer) -> dict:
    return client.get("/v1/billing/balance", headers=customer.headers).get_json()


def api_calls(client, customer) -> int:
    return client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"]["apiCalls"]


@pytest.mark.money
def test_the_gate_draws_priced_calls_from_credit_and_refuses_at_zero(app, client, staff, customer,
                                                                      backend):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 5,
                                     "included_units": 2})
    grant(client, staff, customer, 20)
    # Two included calls, then four at 0.05: exactly the 0.20 of credit.
    for _ in range(6):
        assert client.post("/v1/authorize", headers=customer.headers, json={}).status_code == 200
    assert balance(client, customer) == {"balance": 0, "posted_balance": 20, "pending_usage": 20,
                                         "currency": "usd", "balance_cents": 0,
                                         "balance_display": "$0.00 credit"}
    refused = client.post("/v1/authorize", headers=customer.headers, json={})
    assert refused.status_code == 402
    body = refused.get_json()
    assert body["error"] == "Usage limit exceeded" and body["code"] == "usage_limit_exceeded"
    assert "credit" in body["message"] and "API call" in body["message"]
    assert body["usage"]["current"] == 6 and body["upgrade_url"]
    # A refused call records nothing and debits nothing.
    assert api_calls(client, customer) == 6
    assert balance(client, customer)["pending_usage"] == 20
    # Billing is never blocked: the customer can still read and top up.
    assert client.get("/v1/billing", headers=customer.headers).status_code == 200
    grant(client, staff, customer, 5)
    assert client.post("/v1/authorize", headers=customer.headers, json={}).status_code == 200
    assert balance(client, customer)["balance"] == 0

    # Closing the day posts the day's usage as one ledger entry for the meter.
    with app.app_context():
        tomorrow = utcnow() + timedelta(days=1)
        from services.usage.rating import post_closed_days
        account = accounts.get_account(customer.account_id)
        assert post_closed_days(account, tomorrow) == 1
        assert post_closed_days(account, tomorrow) == 0  # once
        usage = db.session.query(LedgerEntry).filter_by(account_id=customer.account_id,
                                                        kind="usage").all()
        assert [(e.amount, e.meta["meter"]) for e in usage] == [(-25, "apiCalls")]
        assert ledger.current_balance(customer.account_id) == 0 == ledger.ledger_sum(customer.account_id)
        uow.commit()
        db.session.remove()
    assert balance(client, customer) == {"balance": 0, "posted_balance": 0, "pending_usage": 0,
                                         "currency": "usd", "balance_cents": 0,
                                         "balance_display": "$0.00 credit"}


@pytest.mark.money
def test_ingested_usage_is_rated_cumulatively_across_tier_edges(app, client, staff, customer,
                                                                 backend):
    priced(client, staff, customer, {"meter": "llmTokens", "model": "graduated", "tiers": GRADUATED})
    grant(client, staff, customer, 500)

    def send(n: int, tokens: int) -> int:
        response = client.post("/v1/events", headers=customer.headers, json={"events": [
            {"id": f"e{n}-{i}", "event_name": "llm_completion", "properties": {"tokens": tokens}}
            for i in range(2)]})
        return response.get_json()["accepted"]

    assert send(1, 30) == 2  # 60 tokens: 60 x 0.10
    assert balance(client, customer)["pending_usage"] == 600
    assert send(2, 30) == 2  # 120: 100 x 0.10 + 20 x 0.05 + the second tier's 1.00 flat fee
    assert balance(client, customer)["pending_usage"] == 1000 + 100 + 100
    # Ingestion records usage that already happened even past the credit: the balance
    # available goes below zero, and the gate then refuses priced calls on that meter.
    assert balance(client, customer)["balance"] == 500 - 1200
    refused = client.post("/v1/authorize", headers=customer.headers,
                          json={"event_name": "llm_completion", "properties": {"tokens": 1}})
    assert refused.status_code == 402 and "LLM token" in refused.get_json()["message"]
    # Unpriced meters are not affected by the credit.
    assert client.post("/v1/authorize", headers=customer.headers, json={}).status_code == 200
    # A repeated event id is never rated twice.
    assert send(2, 30) == 0
    assert balance(client, customer)["pending_usage"] == 1200


@pytest.mark.money
def test_spend_cap_refuses_priced_calls_over_the_cap(client, staff, customer, backend):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 5})
    grant(client, staff, customer, 1000)
    settings = client.post("/v1/billing/settings", headers=customer.headers, json={"spend_cap": 10})
    assert settings.status_code == 200 and settings.get_json()["spend_cap"] == 10
    assert [client.post("/v1/authorize", headers=customer.headers, json={}).status_code
            for _ in range(3)] == [200, 200, 402]
    refused = client.post("/v1/authorize", headers=customer.headers, json={}).get_json()
    assert refused["code"] == "usage_limit_exceeded" and "spend cap" in refused["message"]
    usage = client.get("/v1/billing/usage", headers=customer.headers).get_json()
    assert usage["usage"]["apiCalls"] == 2
    assert usage["spend"] == {"amount": 10, "cap": 10, "currency": "usd"}
    # The pages say so: the usage page's spend card and an alert on the dashboard.
    login(client, customer)
    usage_page = client.get("/usage").get_data(as_text=True)
    assert 'data-testid="spend"' in usage_page and "$0.10</strong>" in usage_page
    assert "of a $0.10 cap" in usage_page
    dashboard = client.get("/").get_data(as_text=True)
    assert "You reached your monthly spend cap ($0.10)" in dashboard

    client.post("/v1/billing/settings", headers=customer.headers, json={"spend_cap": 100})
    assert client.post("/v1/authorize", headers=customer.headers, json={}).status_code == 200
    assert balance(client, customer)["balance"] == 1000 - 15
    assert "spend-alert" not in client.get("/").get_data(as_text=True)  # 15 of 100


@pytest.mark.money
def test_concurrent_priced_calls_never_spend_more_than_the_credit(client, staff, customer,
                                                                  live_server, backend):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 7})
    grant(client, staff, customer, 7 * 30 + 3)  # 30 calls, and 3 cents that buy nothing

    def hammer() -> list[int]:
        return [post(live_server.url + "/v1/authorize", b"{}", customer.headers)[0]
                for _ in range(8)]

    # 6 clients of 8 calls: 48 calls, within the plan's 60 a minute.
    statuses = [code for codes in at_once([hammer] * 6) for code in codes]
    assert sorted(set(statuses)) == [200, 402]
    assert statuses.count(200) == 30 == api_calls(client, customer)
    assert balance(client, customer) == {"balance": 3, "posted_balance": 213,
                                         "pending_usage": 210, "currency": "usd",
                                         "balance_cents": -3, "balance_display": "$0.03 credit"}


@pytest.mark.money
def test_close_period_issues_one_statement_per_account_with_gapless_numbers(app, client, staff,
                                                                             backend):
    """Accounts of one customer closed by several runs at once: one statement each."""
    now = utcnow()
    last_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=3)
    with app.app_context():
        with uow.unit():
            owner = accounts.sign_up(email="multi@example.com", password="correct-horse-battery",
                                     name="Multi")
        customer_id = owner.account.customer_id
        keys = [owner.api_key]
        for n in range(3):
            made = client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                               json={"name": f"Team {n}"})
            assert made.status_code == 201, made.get_json()
            keys.append(key_service.issue_key(
                account=accounts.get_account(made.get_json()["id"])).plaintext)
        uow.commit()
        db.session.remove()
    team = [Customer("", "", key_owner, key) for key_owner, key in
            zip(_account_ids(app, keys), keys, strict=True)]
    for member in team:
        priced(client, staff, member, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 3})
        response = client.post("/v1/events", headers=member.headers, json={"events": [
            {"id": f"old-{i}", "event_name": "api_call", "timestamp": last_month.isoformat()}
            for i in range(4)]})
        assert response.get_json()["accepted"] == 4

    def run_close() -> None:
        with app.app_context(), uow.unit():
            period_close.close(now)

    at_once([run_close] * 4)  # raises what any of them raised
    with app.app_context():
        period_close.close(now)  # and once more, later: nothing new
        statements = db.session.query(Invoice).filter_by(kind=INVOICE_STATEMENT).all()
        assert len(statements) == 4
        assert sorted(int(s.number.rsplit("-", 1)[1]) for s in statements) == [1, 2, 3, 4]
        assert {s.total for s in statements} == {12}
        usage = db.session.query(LedgerEntry).filter_by(kind="usage").all()
        assert sorted(e.amount for e in usage) == [-12] * 4
        for member in team:
            assert ledger.current_balance(member.account_id) == -12 == ledger.ledger_sum(member.account_id)
        db.session.remove()


def _account_ids(app, api_keys: list[str]) -> list[str]:
    with app.app_context():
        ids = [key_service.authenticate(k).account_id for k in api_keys]
        db.session.remove()
    return ids


@pytest.mark.money
def test_grants_are_consumed_soonest_expiry_first_and_only_the_rest_expires(app, client, staff,
                                                                            customer, backend):
    now = utcnow()
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 50})
    soon = grant(client, staff, customer, 100, expires_at=(now + timedelta(days=10)).isoformat())
    later = grant(client, staff, customer, 100, expires_at=(now + timedelta(days=20)).isoformat())
    forever = grant(client, staff, customer, 100)
    for _ in range(3):  # 150 of usage: all of `soon`, half of `later`
        assert client.post("/v1/authorize", headers=customer.headers, json={}).status_code == 200
    credits = client.get(f"/v1/accounts/{customer.account_id}/credits",
                         headers=customer.headers).get_json()["data"]
    assert {g["id"]: g["remaining"] for g in credits} == {soon["id"]: 0, later["id"]: 50,
                                                          forever["id"]: 100}
    with app.app_context():
        assert grants.expire_due(now + timedelta(days=11)) == 1  # nothing left of it
        assert ledger.current_balance(customer.account_id) == 300
        assert grants.expire_due(now + timedelta(days=21)) == 1  # 50 left of it
        assert grants.expire_due(now + timedelta(days=21)) == 0
        assert ledger.current_balance(customer.account_id) == 250 == ledger.ledger_sum(customer.account_id)
        expiries = db.session.query(LedgerEntry).filter_by(account_id=customer.account_id,
                                                           kind="expiry").all()
        assert [e.amount for e in expiries] == [-50]
        uow.commit()
        db.session.remove()
    # What is left to spend: the grant that never expires.
    assert balance(client, customer)["balance"] == 100
