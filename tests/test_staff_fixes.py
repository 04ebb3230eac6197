"""Fixes to the staff console and the staff API found by QA."""

from __future__ import annotations

import re

import pytest

from extensions import db
from models import Account
from models.billing import INVOICE_RENEWAL, INVOICE_STATEMENT
from services import uow
from services.billing import invoices
from services.ledger import entries as ledger
from tests.support.staff import audit_rows, customer_id_of, make_staff, staff_login, token
from tests.test_rated_usage import balance, grant, priced
from tests.test_staff import post_action


@pytest.fixture
def staff(app):
    return make_staff(app)


@pytest.mark.parametrize("status_filter", ["", "all", "failed", "pending", "bogus"])
def test_webhook_inbox_answers_200_for_every_filter(client, staff, status_filter):
    staff_login(client, staff)
    query = f"?status={status_filter}" if status_filter else ""
    response = client.get(f"/staff/webhooks{query}")
    assert response.status_code == 200
    shown = status_filter if status_filter in ("all", "failed", "pending") else "all"
    page = response.get_data(as_text=True)
    assert f'status={shown}" aria-current="page"' in page


@pytest.mark.money
@pytest.mark.parametrize("customer_filter", ["cust_nope", "%"])
def test_audit_export_filtered_by_an_unknown_customer(app, client, staff, customer_filter,
                                                       backend):
    staff_login(client, staff)
    page = client.get("/staff/audit", query_string={"customer": customer_filter})
    assert page.status_code == 200
    export = client.get("/staff/audit.csv", query_string={"customer": customer_filter})
    assert export.status_code == 200
    lines = export.get_data(as_text=True).splitlines()
    assert len(lines) == 1  # the header only: no rows for that customer
    rows = audit_rows(app, action="audit.export")
    assert len(rows) == 1
    assert rows[0].customer_id is None and rows[0].meta == {"customer": customer_filter}


@pytest.mark.money
def test_audit_export_filtered_by_a_real_customer_names_it(app, client, staff, customer, backend):
    staff_login(client, staff)
    cid = customer_id_of(app, customer.account_id)
    assert client.get("/staff/audit.csv", query_string={"customer": cid}).status_code == 200
    rows = audit_rows(app, action="audit.export")
    assert [(r.customer_id, r.meta) for r in rows] == [(cid, {"customer": cid})]


@pytest.mark.money
def test_adjust_balance_counts_usage_not_yet_posted(app, client, staff, customer, backend):
    priced(client, staff, customer, {"meter": "apiCalls", "model": "per_unit", "unit_amount": 5})
    grant(client, staff, customer, 1000)
    for _ in range(4):
        assert client.post("/v1/authorize", headers=customer.headers, json={}).status_code == 200
    assert balance(client, customer)["pending_usage"] == 20
    staff_login(client, staff)
    too_much = post_action(client, customer.account_id, "adjust", amount="-10.00",
                           reason="Take back the whole grant")
    assert too_much.status_code == 400
    page = too_much.get_data(as_text=True)
    message = "Not enough credit: at most $9.80 can be taken ($0.20 of usage is not yet posted)."
    assert message in page
    # Beside the amount field, with what was typed kept.
    field = re.search(rf'id="{customer.account_id}-adjust-amount".*?{re.escape(message)}',
                      page, re.S)
    assert field and 'value="-10.00"' in field.group(0)
    with app.app_context():
        assert ledger.current_balance(customer.account_id) == 1000
        db.session.remove()
    assert audit_rows(app, action="balance.adjust") == []
    done = post_action(client, customer.account_id, "adjust", amount="-9.80",
                       reason="Take back the rest")
    assert done.status_code == 303
    assert balance(client, customer) == {"balance": 0, "posted_balance": 20, "pending_usage": 20,
                                         "currency": "usd", "balance_cents": 0,
                                         "balance_display": "$0.00 credit"}


def test_assigning_a_price_plan_needs_price_plan_id(app, client, staff, customer):
    plan_id = priced(client, staff, customer,
                     {"meter": "apiCalls", "model": "per_unit", "unit_amount": 5})
    url = f"/v1/accounts/{customer.account_id}/price-plan"
    missing = client.post(url, headers=staff.headers, json={})
    assert missing.status_code == 400
    body = missing.get_json()
    assert body["param"] == "price_plan_id" and "required" in body["message"]
    assert client.get("/v1/price-plans", headers=customer.headers).get_json()["data"][0]["id"] \
        == plan_id
    # An explicit null still takes the plan off, as documented.
    off = client.post(url, headers=staff.headers, json={"price_plan_id": None, "reason": "Ends"})
    assert off.status_code == 200 and off.get_json()["price_plan_id"] is None
    assert client.get("/v1/price-plans", headers=customer.headers).get_json()["data"] == []


def test_creating_a_meter_is_audited(app, client, staff):
    created = client.post("/v1/meters", headers=staff.headers, json={
        "name": "gpuSeconds", "event_name": "gpu", "aggregation": "sum", "property": "seconds",
        "unit": "s"})
    assert created.status_code == 201
    [row] = audit_rows(app, action="meter.create")
    assert row.staff_user_id == staff.user_id and row.via == "api"
    assert row.meta["name"] == "gpuSeconds"
    assert row.after == {"event_name": "gpu", "aggregation": "sum", "property": "seconds",
                         "unit": "s"}
    # A refused meter records nothing.
    assert client.post("/v1/meters", headers=staff.headers, json={
        "name": "gpuSeconds", "event_name": "gpu", "aggregation": "count"}).status_code == 409
    assert len(audit_rows(app, action="meter.create")) == 1
    staff_login(client, staff)
    log = client.get("/staff/audit", query_string={"action": "meter.create"})
    assert "meter.create" in log.get_data(as_text=True)


def test_a_short_reason_is_refused_saying_the_minimum(app, client, staff, customer):
    url = f"/v1/accounts/{customer.account_id}/credits"
    short = client.post(url, headers=staff.headers, json={"amount": 100, "reason": "x"})
    assert short.status_code == 400
    body = short.get_json()
    assert body["code"] == "reason_required" and body["param"] == "reason"
    assert body["message"] == "Give a reason of at least 3 characters."
    assert client.post(url, headers=staff.headers,
                       json={"amount": 100, "reason": "abc"}).status_code == 201
    # Two bad fields: the first one, in the documented order (amount, reason), is named.
    both = client.post(url, headers=staff.headers, json={"amount": -5, "reason": "x"})
    assert both.status_code == 400 and both.get_json()["param"] == "amount"
    # The document says the same minimum.
    spec = client.get("/v1/openapi.json").get_json()
    reason = spec["components"]["schemas"]["GrantCreditRequest"]["properties"]["reason"]
    assert reason["minLength"] == 3 and "3 characters" in reason["description"]


def test_console_says_the_reason_minimum_beside_it(client, staff, customer):
    staff_login(client, staff)
    short = post_action(client, customer.account_id, "adjust", amount="5.00", reason="x")
    assert short.status_code == 400
    assert "Give a reason of at least 3 characters." in short.get_data(as_text=True)


def test_invoice_lines_always_carry_an_integer_unit_amount(app, client, customer):
    with app.app_context():
        acct = db.session.get(Account, customer.account_id)
        sub = invoices.issue(acct, kind=INVOICE_RENEWAL, source_id="in_fix_1", currency="usd",
                             lines=[invoices.Line("Tally Pro, 2 seats", 4000, 2)])
        usage = invoices.issue(acct, kind=INVOICE_STATEMENT, source_id="stmt_fix_1",
                               currency="usd", status="open",
                               lines=[invoices.Line("apiCalls: 12,345 calls", 62, quantity=12345),
                                      invoices.Line("llmTokens: 3 tokens", 10, quantity=3)])
        ids = sub.id, usage.id
        uow.commit()
        db.session.remove()
    lines = client.get(f"/v1/invoices/{ids[0]}", headers=customer.headers).get_json()["lines"]
    assert lines == [{"description": "Tally Pro, 2 seats", "quantity": 2, "unit_amount": 2000,
                      "amount": 4000}]
    lines = client.get(f"/v1/invoices/{ids[1]}", headers=customer.headers).get_json()["lines"]
    assert [(line["quantity"], line["unit_amount"], line["amount"]) for line in lines] == [
        (12345, 0, 62), (3, 3, 10)]


@pytest.mark.parametrize("currency", ["xyz", "us", "usdd", "", 840, "bif"])
def test_unknown_currencies_are_refused(app, client, staff, customer, currency):
    cid = customer_id_of(app, customer.account_id)
    account = client.post(f"/v1/customers/{cid}/accounts", headers=staff.headers,
                          json={"name": "x", "currency": currency})
    assert account.status_code == 400 and account.get_json()["param"] == "currency"
    assert "ISO 4217" in account.get_json()["message"]
    plan = client.post("/v1/price-plans", headers=staff.headers, json={
        "name": "x", "currency": currency,
        "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": 1}]})
    assert plan.status_code == 400 and plan.get_json()["param"] == "currency"
    listed = client.get(f"/v1/customers/{cid}/accounts", headers=staff.headers).get_json()
    assert len(listed["data"]) == 1
    assert client.get("/v1/price-plans", headers=staff.headers).get_json()["data"] == []


@pytest.mark.parametrize("currency, stored", [("eur", "eur"), ("GBP", "gbp"), ("jpy", "jpy")])
def test_supported_currencies_are_taken(app, client, staff, customer, currency, stored):
    cid = customer_id_of(app, customer.account_id)
    account = client.post(f"/v1/customers/{cid}/accounts", headers=staff.headers,
                          json={"name": "x", "currency": currency})
    assert account.status_code == 201 and account.get_json()["currency"] == stored
    plan = client.post("/v1/price-plans", headers=staff.headers, json={
        "name": "x", "currency": currency,
        "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": 1}]})
    assert plan.status_code == 201 and plan.get_json()["currency"] == stored


def test_price_plans_page_says_a_bad_currency_beside_it(client, staff):
    staff_login(client, staff)
    page = client.get("/staff/price-plans/")
    form = {"csrf_token": token(page.get_data(as_text=True)), "name": "Euros",
            "currency": "xyz",
            "charges": '[{"meter": "apiCalls", "model": "per_unit", "unit_amount": 1}]'}
    refused = client.post("/staff/price-plans/", data=form)
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert 'id="pp-currency-error">currency must be an ISO 4217 code' in html
    assert 'value="Euros"' in html and 'value="xyz"' in html
