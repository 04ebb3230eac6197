"""Customer and account management as JSON with a staff key, and credit grants."""

from __future__ import annotations

from datetime import timedelta

import pytest

from extensions import db
from models import CreditGrant
from models.base import utcnow
from models.ledger import KIND_ADJUSTMENT
from services.ledger import entries as ledger
from services.ledger import grants
from tests.support.staff import audit_rows, make_staff


@pytest.fixture
def staff(app):
    return make_staff(app)


def error_shape(response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert {"error", "code", "message"} <= set(body)
    if code:
        assert body["code"] == code
    if param:
        assert body["param"] == param
    return body


def test_a_customer_key_is_refused_everywhere(client, customer, make_customer):
    for method, path in [("GET", "/v1/customers"), ("POST", "/v1/customers"),
                         ("GET", "/v1/customers/cust_x"), ("GET", "/v1/customers/cust_x/accounts"),
                         ("POST", "/v1/customers/cust_x/accounts"),
                         ("GET", f"/v1/accounts/{customer.account_id}"),
                         ("POST", f"/v1/accounts/{customer.account_id}/credits")]:
        response = client.open(path, method=method, headers=customer.headers,
                               json={"amount": 100, "reason": "free money", "name": "x"})
        error_shape(response, 403, "key_scope")
    assert client.get("/v1/customers").status_code == 401  # and no key at all
    # A customer reads its own account's credit grants, and no one else's.
    own = client.get(f"/v1/accounts/{customer.account_id}/credits", headers=customer.headers)
    assert own.status_code == 200 and own.get_json()["data"] == []
    other = make_customer("Other")
    error_shape(client.get(f"/v1/accounts/{other.account_id}/credits", headers=customer.headers),
                404, "not_found")


def test_create_customer_with_togai_fields(app, client, staff):
    created = client.post("/v1/customers", headers=staff.headers,
                          json={"name": "Initech", "primaryEmail": "Billing@Initech.example"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["object"] == "customer" and body["id"].startswith("cust_")
    assert body["name"] == "Initech" and body["primaryEmail"] == "billing@initech.example"
    assert body["accounts"] == []

    chosen = client.post("/v1/customers", headers=staff.headers,
                         json={"id": "initech-eu", "name": "Initech EU",
                               "primaryEmail": "eu@initech.example"})
    assert chosen.status_code == 201 and chosen.get_json()["id"] == "initech-eu"
    error_shape(client.post("/v1/customers", headers=staff.headers,
                            json={"id": "initech-eu", "name": "Again",
                                  "primaryEmail": "x@initech.example"}), 409, "customer_exists", "id")
    error_shape(client.post("/v1/customers", headers=staff.headers,
                            json={"primaryEmail": "x@initech.example"}), 400, param="name")
    error_shape(client.post("/v1/customers", headers=staff.headers,
                            json={"name": "X", "primaryEmail": "not-an-email"}), 400,
                param="primaryEmail")
    error_shape(client.post("/v1/customers", headers=staff.headers,
                            json={"name": "X", "primaryEmail": "a@b.example", "id": "bad id!"}),
                400, param="id")
    error_shape(client.post("/v1/customers", headers=staff.headers, data="[1]"), 400, "invalid_json")
    rows = audit_rows(app, action="customer.create")
    assert len(rows) == 2 and all(r.staff_user_id == staff.user_id and r.via == "api" for r in rows)


def test_list_and_get_customers_with_pagination(client, staff, customer, make_customer):
    second = make_customer("Globex")
    first_page = client.get("/v1/customers?limit=1", headers=staff.headers).get_json()
    assert first_page["object"] == "list" and first_page["has_more"] is True
    assert len(first_page["data"]) == 1
    newest = first_page["data"][0]
    assert newest["primaryEmail"] == second.email
    rest = client.get(f"/v1/customers?limit=1&starting_after={newest['id']}",
                      headers=staff.headers).get_json()
    assert rest["has_more"] is False and rest["data"][0]["primaryEmail"] == customer.email
    search = client.get("/v1/customers?q=globex", headers=staff.headers).get_json()
    assert [c["primaryEmail"] for c in search["data"]] == [second.email]
    error_shape(client.get("/v1/customers?limit=0", headers=staff.headers), 400, param="limit")
    error_shape(client.get("/v1/customers?starting_after=cust_nope", headers=staff.headers), 400,
                param="starting_after")

    one = client.get(f"/v1/customers/{newest['id']}", headers=staff.headers)
    assert one.status_code == 200
    accounts = one.get_json()["accounts"]
    assert accounts[0]["id"] == second.account_id and accounts[0]["balance"] == 0
    error_shape(client.get("/v1/customers/cust_nope", headers=staff.headers), 404, "not_found")


def test_accounts_of_a_customer(app, client, staff):
    customer_id = client.post("/v1/customers", headers=staff.headers, json={
        "name": "Hooli", "primaryEmail": "ap@hooli.example"}).get_json()["id"]
    made = client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                       json={"name": "Hooli EU", "currency": "EUR", "plan": "pro"})
    assert made.status_code == 201
    account = made.get_json()
    assert account["object"] == "account" and account["currency"] == "eur"
    assert account["plan"] == "pro" and account["customer_id"] == customer_id
    default = client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                          json={"name": "Hooli US"}).get_json()
    assert default["currency"] == "usd" and default["plan"] == "free"
    listed = client.get(f"/v1/customers/{customer_id}/accounts", headers=staff.headers).get_json()
    assert [a["name"] for a in listed["data"]] == ["Hooli US", "Hooli EU"]
    error_shape(client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                            json={"name": "X", "plan": "platinum"}), 400, param="plan")
    error_shape(client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                            json={"name": "X", "currency": "dollars"}), 400, param="currency")
    error_shape(client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                            json={}), 400, param="name")
    error_shape(client.post("/v1/customers/cust_nope/accounts", headers=staff.headers,
                            json={"name": "X"}), 404)
    assert client.get(f"/v1/accounts/{account['id']}", headers=staff.headers).get_json()["name"] == "Hooli EU"
    assert len(audit_rows(app, action="account.create")) == 2


@pytest.mark.money
def test_credit_grant_needs_a_reason_and_lands_once(app, client, staff, customer, backend):
    url = f"/v1/accounts/{customer.account_id}/credits"
    error_shape(client.post(url, headers=staff.headers, json={"amount": 500}), 400,
                "reason_required", "reason")
    error_shape(client.post(url, headers=staff.headers, json={"reason": "hi there"}), 400,
                param="amount")
    for bad in (0, -5, 1.5, "500", True):
        error_shape(client.post(url, headers=staff.headers, json={"amount": bad, "reason": "test"}),
                    400, param="amount")
    error_shape(client.post("/v1/accounts/acct_nope/credits", headers=staff.headers,
                            json={"amount": 500, "reason": "test"}), 404)

    headers = staff.headers | {"Idempotency-Key": "ticket-77"}
    first = client.post(url, headers=headers, json={"amount": 1500, "reason": "Outage credit"})
    assert first.status_code == 201
    body = first.get_json()
    assert body["object"] == "credit_grant" and body["status"] == "active"
    assert body["amount"] == 1500 and body["balance"] == 1500 and body["reason"] == "Outage credit"
    again = client.post(url, headers=headers, json={"amount": 1500, "reason": "Outage credit"})
    # The retry gets the first answer again (services/idempotency.py), and nothing is granted twice.
    assert again.status_code == 201 and again.get_json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    error_shape(client.post(url, headers=headers, json={"amount": 999, "reason": "Outage credit"}),
                409, "idempotency_key_reused")
    assert client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"] == 1500
    with app.app_context():
        assert ledger.ledger_sum(customer.account_id) == 1500 == ledger.current_balance(customer.account_id)
        db.session.remove()
    listed = client.get(url, headers=staff.headers).get_json()
    assert [g["id"] for g in listed["data"]] == [body["id"]]
    row = audit_rows(app, action="credit.grant")
    assert len(row) == 1 and row[0].via == "api" and row[0].staff_user_id == staff.user_id
    assert row[0].before == {"balance": 0} and row[0].after == {"balance": 1500}


@pytest.mark.money
def test_scheduled_and_expiring_grants(app, client, staff, customer, backend):
    url = f"/v1/accounts/{customer.account_id}/credits"
    now = utcnow()
    error_shape(client.post(url, headers=staff.headers, json={
        "amount": 500, "reason": "late", "expires_at": (now - timedelta(days=1)).isoformat()}),
        400, param="expires_at")
    error_shape(client.post(url, headers=staff.headers, json={
        "amount": 500, "reason": "bad date", "effective_from": "tomorrow"}), 400,
        param="effective_from")
    later = client.post(url, headers=staff.headers, json={
        "amount": 700, "reason": "Starts next week",
        "effective_from": (now + timedelta(days=7)).isoformat()}).get_json()
    assert later["status"] == "scheduled" and later["balance"] == 0
    expiring = client.post(url, headers=staff.headers, json={
        "amount": 1000, "reason": "Trial credit",
        "expires_at": (now + timedelta(days=30)).isoformat()}).get_json()
    assert expiring["status"] == "active" and expiring["balance"] == 1000

    with app.app_context():
        # A 300 debit is taken from the grant first.
        ledger.post_entry(customer.account_id, -300, kind=KIND_ADJUSTMENT, source="test", source_id="d1")
        assert grants.post_due(now + timedelta(days=1)) == 0
        assert grants.post_due(now + timedelta(days=8)) == 1
        assert grants.post_due(now + timedelta(days=8)) == 0  # once
        assert ledger.current_balance(customer.account_id) == 1400
        assert grants.expire_due(now + timedelta(days=31)) == 1
        assert grants.expire_due(now + timedelta(days=31)) == 0  # once
        # The 700 left of the trial grant expired; the scheduled grant is untouched.
        assert ledger.current_balance(customer.account_id) == 700 == ledger.ledger_sum(customer.account_id)
        row = db.session.get(CreditGrant, expiring["id"])
        assert row.status == "expired" and row.expired_amount == 700
        db.session.remove()


def test_credit_grants_command(app, staff, customer):
    result = app.test_cli_runner().invoke(args=["credit-grants"])
    assert result.exit_code == 0 and result.output.strip() == '{"posted": 0, "expired": 0}'
