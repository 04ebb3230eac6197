"""Invoices and receipts: list (cursor-paginated), one, and its PDF."""

from __future__ import annotations

from flask import g, jsonify, url_for

from models import Invoice
from models.keys import KIND_STAFF
from services.billing import invoices
from services.errors import NotFound
from views.api import ACCOUNT_KEY, STAFF_KEY, account, bp, current_key, key_required
from views.api.lists import list_response, page_args
from views.pdf import pdf_response


def invoice_json(invoice: Invoice, *, lines: bool = False) -> dict:
    body = {
        "id": invoice.id, "object": "invoice", "number": invoice.number,
        "stripe_invoice_number": invoice.stripe_invoice_number, "kind": invoice.kind,
        "amount": invoice.total, "currency": invoice.currency, "status": invoice.status,
        "issuedAt": invoice.issued_at.isoformat(),
        "paidAt": invoice.paid_at.isoformat() if invoice.paid_at else None,
        "periodStart": invoice.period_start.isoformat() if invoice.period_start else None,
        "periodEnd": invoice.period_end.isoformat() if invoice.period_end else None,
        "pdfUrl": url_for("api.invoice_pdf", invoice_id=invoice.id, _external=True),
    }
    if lines:
        body["lines"] = [{"description": line.description, "quantity": line.quantity,
                          "unit_amount": line.unit_amount if line.unit_amount is not None
                          else invoices.unit_amount_of(line.amount, line.quantity),
                          "amount": line.amount}
                         for line in invoice.lines]
    return body


def _list(account_id: str):
    # `invoices` carries the same items: the shape this endpoint's first clients read.
    return list_response(invoices.list_for(account_id, **page_args()), invoice_json,
                         also_as="invoices")


@bp.get("/billing/invoices")
@key_required(*ACCOUNT_KEY)
def list_invoices():
    return _list(account().id)


@bp.get("/accounts/<account_id>/invoices")
@key_required(*ACCOUNT_KEY, *STAFF_KEY)
def account_invoices(account_id: str):
    if current_key().kind != KIND_STAFF and account_id != account().id:
        raise NotFound(f"No such account: {account_id}", param="account_id")
    return _list(account_id)


def _owned(invoice_id: str) -> Invoice:
    key = current_key()
    return invoices.get(invoice_id, account_id=None if key.kind == KIND_STAFF else g.account.id)


@bp.get("/invoices/<invoice_id>")
@key_required(*ACCOUNT_KEY, *STAFF_KEY)
def get_invoice(invoice_id: str):
    return jsonify(invoice_json(_owned(invoice_id), lines=True))


@bp.get("/invoices/<invoice_id>/pdf")
@key_required(*ACCOUNT_KEY, *STAFF_KEY)
def invoice_pdf(invoice_id: str):
    return pdf_response(_owned(invoice_id))
