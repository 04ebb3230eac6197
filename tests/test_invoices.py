"""Invoices and receipts: one per cause, gapless numbers, pagination, PDFs, ownership."""

from __future__ import annotations

import io
from functools import partial

import pytest
from pypdf import PdfReader

from extensions import db
from models.billing import INVOICE_RECEIPT
from services import uow
from services.billing import invoices
from services.identity import accounts
from tests.conftest import login
from tests.support.payments import pay
from tests.support.threads import at_once

pytestmark = pytest.mark.money


def top_up(client, stripe_client, customer, amount: int) -> str:
    pi = client.post("/v1/billing/payment-intents", json={"amount": amount},
                     headers=customer.headers).get_json()["payment_intent_id"]
    pay(stripe_client, pi)
    response = client.post("/v1/billing/confirm-payment", json={"payment_intent_id": pi},
                           headers=customer.headers)
    assert response.status_code == 200
    return pi


def test_each_top_up_gets_one_receipt(client, customer, stripe_client):
    pi = top_up(client, stripe_client, customer, 2500)
    client.post("/v1/billing/confirm-payment", json={"payment_intent_id": pi},
                headers=customer.headers)  # a replay issues nothing new
    listed = client.get("/v1/billing/invoices", headers=customer.headers).get_json()
    assert listed["has_more"] is False and len(listed["invoices"]) == 1
    receipt = listed["invoices"][0]
    assert receipt["amount"] == 2500 and receipt["currency"] == "usd"
    assert receipt["status"] == "paid" and receipt["paidAt"]
    assert receipt["number"].endswith("-0001")
    assert receipt["pdfUrl"].endswith(f"/v1/invoices/{receipt['id']}/pdf")
    detail = client.get(f"/v1/invoices/{receipt['id']}", headers=customer.headers).get_json()
    assert detail["lines"] == [{"description": "Prepaid credit top-up by card", "quantity": 1,
                                "unit_amount": 2500, "amount": 2500}]


def test_pdf_opens_and_says_what_the_invoice_says(client, customer, stripe_client):
    top_up(client, stripe_client, customer, 1234)
    receipt = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["invoices"][0]
    pdf = client.get(receipt["pdfUrl"].replace("http://localhost", ""), headers=customer.headers)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert receipt["number"] in text and "$12.34" in text and "Receipt" in text


def test_another_accounts_invoice_is_404(client, make_customer, stripe_client):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    top_up(client, stripe_client, alice, 1000)
    invoice_id = client.get("/v1/billing/invoices", headers=alice.headers).get_json()["invoices"][0]["id"]
    for path in (f"/v1/invoices/{invoice_id}", f"/v1/invoices/{invoice_id}/pdf",
                 f"/v1/accounts/{alice.account_id}/invoices"):
        response = client.get(path, headers=bob.headers)
        assert response.status_code == 404 and response.get_json()["code"] == "not_found", path
    login(client, bob)
    assert client.get(f"/billing/invoices/{invoice_id}").status_code == 404
    assert client.get(f"/billing/invoices/{invoice_id}/pdf").status_code == 404


def test_invoice_pages(client, customer, stripe_client):
    top_up(client, stripe_client, customer, 2000)
    login(client, customer)
    index = client.get("/billing/invoices").get_data(as_text=True)
    assert "Top-up receipt" in index and "$20.00" in index and "Paid" in index
    invoice_id = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["invoices"][0]["id"]
    page = client.get(f"/billing/invoices/{invoice_id}").get_data(as_text=True)
    assert 'data-testid="invoice-total">$20.00' in page
    pdf = client.get(f"/billing/invoices/{invoice_id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def issue_receipts(app, account_id: str, count: int, prefix: str = "src") -> None:
    with app.app_context():
        account = accounts.get_account(account_id)
        for i in range(count):
            with uow.unit():  # each receipt is an operation of its own, as in the app
                invoices.issue(account, kind=INVOICE_RECEIPT, source_id=f"{prefix}-{i}",
                               currency="usd", lines=[invoices.Line("x", 100 + i)])
        db.session.remove()


def test_cursor_pagination_newest_first(app, client, customer):
    issue_receipts(app, customer.account_id, 5)
    first = client.get("/v1/billing/invoices?limit=2", headers=customer.headers).get_json()
    numbers = [i["number"][-4:] for i in first["invoices"]]
    assert numbers == ["0005", "0004"] and first["has_more"] is True
    assert first["data"] == first["invoices"]
    second = client.get(f"/v1/billing/invoices?limit=2&starting_after={first['invoices'][-1]['id']}",
                        headers=customer.headers).get_json()
    assert [i["number"][-4:] for i in second["invoices"]] == ["0003", "0002"]
    back = client.get(f"/v1/billing/invoices?limit=2&ending_before={second['invoices'][0]['id']}",
                      headers=customer.headers).get_json()
    assert [i["number"][-4:] for i in back["invoices"]] == ["0005", "0004"]
    for query, param in (("limit=0", "limit"), ("limit=101", "limit"),
                         ("starting_after=inv_nope", "starting_after")):
        bad = client.get(f"/v1/billing/invoices?{query}", headers=customer.headers)
        assert bad.status_code == 400 and bad.get_json()["param"] == param


def test_numbers_have_no_gaps_under_concurrent_issue(app, customer):
    """Eight threads issue receipts for one customer at once: numbers 1..N, each once."""
    at_once([partial(issue_receipts, app, customer.account_id, 5, f"t{n}") for n in range(8)])
    with app.app_context():
        from models import Invoice
        numbers = sorted(int(i.number.rsplit("-", 1)[1]) for i in db.session.query(Invoice).all())
        db.session.remove()
    assert numbers == list(range(1, 41))
