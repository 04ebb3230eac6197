"""Every /v1 list pages the same way: `limit` (1-100, default 10), `starting_after`,
`ending_before`, and `{object: "list", data, has_more}`."""

from __future__ import annotations

import pytest

from extensions import db
from models import Account
from models.billing import INVOICE_RECEIPT
from services import uow
from services.billing import invoices
from tests.support.staff import customer_id_of, make_staff


def walk(client, path: str, headers: dict[str, str], id_key: str = "id", limit: int = 2) -> list:
    """Page forward then backward through a list; both ways give the full list, in order."""
    sep = "&" if "?" in path else "?"
    everything = client.get(f"{path}{sep}limit=100", headers=headers).get_json()
    assert everything["object"] == "list" and everything["has_more"] is False, everything
    ids = [str(item[id_key]) for item in everything["data"]]
    assert len(ids) > limit, f"{path}: make more items than one page"

    forward: list[str] = []
    pages: list[list[str]] = []
    cursor = ""
    while True:
        body = client.get(f"{path}{sep}limit={limit}{cursor}", headers=headers).get_json()
        page = [str(item[id_key]) for item in body["data"]]
        assert len(page) <= limit
        forward += page
        pages.append(page)
        if not body["has_more"]:
            break
        cursor = f"&starting_after={page[-1]}"
    assert forward == ids

    backward: list[str] = []
    before = pages[-1][0]
    while True:
        body = client.get(f"{path}{sep}limit={limit}&ending_before={before}", headers=headers).get_json()
        page = [str(item[id_key]) for item in body["data"]]
        backward = page + backward
        if not body["has_more"]:
            break
        before = page[0]
    assert backward + pages[-1] == ids

    default = client.get(path, headers=headers).get_json()
    assert [str(item[id_key]) for item in default["data"]] == ids[:10]
    for bad in ("0", "101", "ten", "-1"):
        response = client.get(f"{path}{sep}limit={bad}", headers=headers)
        assert response.status_code == 400 and response.get_json()["param"] == "limit"
    for param in ("starting_after", "ending_before"):
        response = client.get(f"{path}{sep}{param}=nope_123", headers=headers)
        assert response.status_code == 400 and response.get_json()["param"] == param
    both = client.get(f"{path}{sep}starting_after={ids[0]}&ending_before={ids[-1]}", headers=headers)
    assert both.status_code == 400
    return everything["data"]


@pytest.fixture
def staff(app):
    return make_staff(app)


def test_customer_lists(app, client, customer, staff):
    for n in range(3):
        assert client.post("/v1/keys", headers=customer.headers, json={"name": f"k{n}"}).status_code == 201
        assert client.post(f"/v1/accounts/{customer.account_id}/credits", headers=staff.headers,
                           json={"amount": 100 + n, "reason": f"credit {n}"}).status_code == 201
    keys = walk(client, "/v1/keys", customer.headers)
    assert [k["name"] for k in keys[:3]] == ["k2", "k1", "k0"]  # newest first
    ledger = walk(client, "/v1/billing/ledger", customer.headers)
    assert [e["amount"] for e in ledger] == [102, 101, 100]
    credits = walk(client, f"/v1/accounts/{customer.account_id}/credits", staff.headers)
    assert [c["amount"] for c in credits] == [102, 101, 100]
    # The account key reads the same grants; their reason as its ledger says it.
    own = walk(client, f"/v1/accounts/{customer.account_id}/credits", customer.headers)
    assert own == [c | {"reason": "Credit from Tally"} for c in credits]
    plans = walk(client, "/v1/billing/plans", customer.headers, id_key="name", limit=1)
    assert [p["name"] for p in plans] == ["free", "pro"]  # the configuration's order


def test_invoice_lists_keep_the_invoices_key(app, client, customer, staff):
    with app.app_context():
        account = db.session.get(Account, customer.account_id)
        for n in range(3):
            invoices.issue(account, kind=INVOICE_RECEIPT, source_id=f"pi_test_{n}", currency="usd",
                           lines=[invoices.Line("Top-up", 500 + n)])
        uow.commit()
        db.session.remove()
    listed = walk(client, "/v1/billing/invoices", customer.headers)
    assert len(listed) == 3
    body = client.get("/v1/billing/invoices?limit=2", headers=customer.headers).get_json()
    assert body["invoices"] == body["data"] and body["has_more"] is True
    assert walk(client, f"/v1/accounts/{customer.account_id}/invoices", staff.headers) == listed


def test_staff_lists(app, client, make_customer, staff):
    first = make_customer("Paged")
    for n in range(3):
        make_customer(f"More{n}")
    customers = walk(client, "/v1/customers", staff.headers)
    assert len(customers) == 4
    customer_id = customer_id_of(app, first.account_id)
    for n in range(2):
        assert client.post(f"/v1/customers/{customer_id}/accounts", headers=staff.headers,
                           json={"name": f"Extra {n}"}).status_code == 201
    assert len(walk(client, f"/v1/customers/{customer_id}/accounts", staff.headers)) == 3
    for n in range(3):
        assert client.post("/v1/price-plans", headers=staff.headers, json={
            "name": f"Plan {n}", "currency": "usd",
            "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": n + 1}]}
        ).status_code == 201
    assert [p["name"] for p in walk(client, "/v1/price-plans", staff.headers)] == [
        "Plan 2", "Plan 1", "Plan 0"]
    for n in range(2):
        assert client.post("/v1/meters", headers=staff.headers, json={
            "name": f"jobs{n}", "event_name": f"job_{n}", "aggregation": "count"}).status_code == 201
    meters = walk(client, "/v1/meters", first.headers, id_key="name")
    assert [m["name"] for m in meters][-2:] == ["jobs0", "jobs1"]  # defaults first, then by creation
    for n in range(3):
        assert client.post("/v1/billing-portal/configurations", headers=staff.headers, json={
            "business_profile": {"headline": f"Config {n}"},
            "features": {"invoice_history": {"enabled": True}}}).status_code == 201
    walk(client, "/v1/billing-portal/configurations", staff.headers)
