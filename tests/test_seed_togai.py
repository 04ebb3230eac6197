"""Togai's API, called as its clients call it (the Togai seed): customers with their first
account and billing address, accounts with Togai's fields, and Togai's usage event bodies on
POST /v1/events with a staff key."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader

from extensions import db
from models import Account, Customer
from models.base import utcnow
from models.billing import INVOICE_RECEIPT
from services import uow
from services import usage as metering
from services.billing import invoices
from services.identity import accounts
from tests.support.staff import make_staff, staff_login

ADDRESS = {"addressLine1": "42 Wallaby Way", "addressLine2": "Suite 9", "city": "Sydney",
           "state": "NSW", "zipCode": "2000", "country": "AU"}


@pytest.fixture
def staff(app):
    return make_staff(app)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def togai_customer(client, staff, **extra) -> dict:
    body = {"id": "acme-corp", "name": "Acme Corp", "primaryEmail": "billing@acme.example",
            "billingAddress": ADDRESS,
            "account": {"id": "acme-main", "name": "Acme main", "invoiceCurrency": "EUR",
                        "aliases": ["acme"]}} | extra
    response = client.post("/v1/customers", headers=bearer(staff.api_key), json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_customer_with_its_account_and_billing_address(app, client, staff):
    created = togai_customer(client, staff)
    assert created["id"] == "acme-corp" and created["name"] == "Acme Corp"
    assert created["primaryEmail"] == "billing@acme.example"
    assert created["billingAddress"] == ADDRESS and created["billing_address"] == ADDRESS
    account = created["account"]
    assert account["id"] == "acme-main" and account["name"] == "Acme main"
    assert account["invoiceCurrency"] == "EUR" and account["currency"] == "eur"
    assert [a["id"] for a in created["accounts"]] == ["acme-main"]
    # Read back as Togai reads it.
    fetched = client.get("/v1/customers/acme-corp", headers=bearer(staff.api_key)).get_json()
    assert fetched["billingAddress"] == ADDRESS and fetched["primaryEmail"] == "billing@acme.example"
    assert fetched["accounts"][0]["invoiceCurrency"] == "EUR"
    listed = client.get("/v1/customers/acme-corp/accounts", headers=bearer(staff.api_key)).get_json()
    assert [a["id"] for a in listed["data"]] == ["acme-main"]


def test_taken_ids_are_409_and_create_nothing(app, client, staff):
    togai_customer(client, staff)
    again = client.post("/v1/customers", headers=bearer(staff.api_key), json={
        "id": "acme-corp", "name": "Again", "primaryEmail": "x@acme.example"})
    assert again.status_code == 409 and again.get_json()["code"] == "customer_exists"
    # A new customer whose account id is taken: 409, and the customer is not kept either.
    taken = client.post("/v1/customers", headers=bearer(staff.api_key), json={
        "id": "globex", "name": "Globex", "primaryEmail": "ap@globex.example",
        "account": {"id": "acme-main", "name": "Globex main", "invoiceCurrency": "USD"}})
    assert taken.status_code == 409 and taken.get_json()["code"] == "account_exists"
    assert client.get("/v1/customers/globex", headers=bearer(staff.api_key)).status_code == 404
    bad = client.post("/v1/customers", headers=bearer(staff.api_key), json={
        "id": "globex", "name": "Globex", "primaryEmail": "ap@globex.example",
        "account": {"id": "bad id!", "name": "Globex main"}})
    assert bad.status_code == 400 and bad.get_json()["param"] == "account.id"
    bad = client.post("/v1/customers", headers=bearer(staff.api_key), json={
        "id": "globex", "name": "Globex", "primaryEmail": "ap@globex.example",
        "account": {"name": "Globex main", "invoiceCurrency": "XYZ"}})
    assert bad.status_code == 400 and bad.get_json()["param"] == "account.invoiceCurrency"
    bad = client.post("/v1/customers", headers=bearer(staff.api_key), json={
        "name": "Globex", "primaryEmail": "ap@globex.example", "billingAddress": {"city": 7}})
    assert bad.status_code == 400 and bad.get_json()["param"] == "billingAddress.city"
    with app.app_context():
        assert db.session.get(Customer, "globex") is None


def test_create_account_with_togai_fields(client, staff):
    togai_customer(client, staff)
    path = "/v1/customers/acme-corp/accounts"
    made = client.post(path, headers=bearer(staff.api_key),
                       json={"id": "acme-eu", "name": "Acme EU", "invoiceCurrency": "GBP"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["id"] == "acme-eu" and body["name"] == "Acme EU"
    assert body["invoiceCurrency"] == "GBP" and body["currency"] == "gbp"
    # Tally's own fields still work.
    tally = client.post(path, headers=bearer(staff.api_key), json={"name": "Acme US", "currency": "usd"})
    assert tally.status_code == 201 and tally.get_json()["invoiceCurrency"] == "USD"
    taken = client.post(path, headers=bearer(staff.api_key), json={"id": "acme-eu", "name": "Again"})
    assert taken.status_code == 409 and taken.get_json()["code"] == "account_exists"
    clash = client.post(path, headers=bearer(staff.api_key),
                        json={"name": "X", "currency": "usd", "invoiceCurrency": "EUR"})
    assert clash.status_code == 400 and clash.get_json()["param"] == "invoiceCurrency"


def test_billing_address_shown_to_staff_and_printed_on_invoices(app, client, staff):
    togai_customer(client, staff)
    with app.app_context():
        with uow.unit():
            invoice = invoices.issue(accounts.get_account("acme-main"), kind=INVOICE_RECEIPT,
                                     source_id="togai-1", currency="eur",
                                     lines=[invoices.Line("Credit", 2500)])
            invoice_id = invoice.id
        db.session.remove()
    pdf = client.get(f"/v1/invoices/{invoice_id}/pdf", headers=bearer(staff.api_key))
    assert pdf.status_code == 200
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    for part in ("42 Wallaby Way", "Suite 9", "Sydney, NSW 2000", "AU"):
        assert part in text, text
    page = app.test_client()
    staff_login(page, staff)
    html = page.get("/staff/customers/acme-corp").get_data(as_text=True)
    assert "42 Wallaby Way" in html and "Sydney, NSW 2000" in html


def test_togai_usage_events_with_a_staff_key(app, client, staff, customer):
    togai_customer(client, staff)
    now = utcnow()
    at = (now - timedelta(minutes=1)).isoformat()
    batch = {"events": [
        {"id": "t-1", "schemaName": "llm_completion", "accountId": "acme-main", "timestamp": at,
         "attributes": [{"name": "tokens", "value": "120", "unit": "tokens"}],
         "dimensions": {"model": "gpt"}},
        {"id": "t-2", "schemaName": "llm_completion", "accountId": "acme-main", "timestamp": at,
         "attributes": {"tokens": 30}},
        {"id": "t-3", "schemaName": "api_call", "accountId": customer.account_id, "timestamp": at},
        {"id": "t-4", "schemaName": "api_call", "accountId": "acct_nobody", "timestamp": at},
        {"id": "t-5", "schemaName": "api_call", "accountId": "acme-main",
         "timestamp": (now - timedelta(days=40)).isoformat()},
        {"id": "t-6", "schemaName": "llm_completion", "accountId": "acme-main", "timestamp": at,
         "attributes": [{"name": "tokens", "value": "12.5"}]},
    ]}
    answer = client.post("/v1/events", headers=bearer(staff.api_key), json=batch)
    assert answer.status_code == 200, answer.get_json()
    result = answer.get_json()
    assert result["accepted"] == 3 and result["duplicates"] == 0
    assert [(r["index"], r["id"], r["code"]) for r in result["rejected"]] == [
        (3, "t-4", "account_not_found"), (4, "t-5", "timestamp_too_old"),
        (5, "t-6", "invalid_property")]
    # Sent again (one event alone, Togai's single-event body): counted once.
    again = client.post("/v1/events", headers=bearer(staff.api_key),
                        json={"event": batch["events"][0]}).get_json()
    assert again == {"accepted": 0, "duplicates": 1, "rejected": []}
    # Metered exactly like Tally's own events: the account's usage says so.
    usage = client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"]
    assert usage["apiCalls"] == 1
    with app.app_context():
        summary = metering.summary(db.session.get(Account, "acme-main"))
        tokens = next(m.current for m in summary.meters if m.meter.name == "llmTokens")
        db.session.remove()
    assert tokens == 150
    for bad, param in (({"event": {"id": "x", "schemaName": "api_call"}}, "event.accountId"),
                       ({"events": [{"id": "x", "schemaName": "api_call", "accountId": "a",
                                     "attributes": [{"name": "n", "value": "lots"}]}]},
                        "events[0].attributes"),
                       ({"events": []}, "events")):
        refused = client.post("/v1/events", headers=bearer(staff.api_key), json=bad)
        assert refused.status_code == 400 and refused.get_json()["param"].startswith(param), \
            refused.get_json()
    too_many = {"events": [{"id": f"e{i}", "schemaName": "api_call", "accountId": "acme-main"}
                           for i in range(501)]}
    refused = client.post("/v1/events", headers=bearer(staff.api_key), json=too_many)
    assert refused.status_code == 400 and refused.get_json()["param"] == "events"
