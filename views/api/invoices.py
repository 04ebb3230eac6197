"""Invoices and receipts: list (cursor-paginated), one, and its PDF."""

from __future__ import annotations

from flask import Response, g, request, url_for

from models import Invoice as InvoiceRow
from models.keys import KIND_STAFF
from services.billing import invoices
from services.errors import NotFound
from services.identity import members
from views.api import ACCOUNT_KEY, ACCOUNT_OR_STAFF_KEY, account, bp, current_key
from views.api.declare import Binary, operation
from views.api.schemas.common import PageQuery
from views.api.schemas.invoices import Invoice, InvoiceLine, InvoiceList
from views.pdf import pdf_response

PDF, OCTET = "application/pdf", "application/octet-stream"


def invoice_answer(invoice: InvoiceRow, *, lines: bool = False) -> Invoice:
    pdf_url = url_for("api.invoice_pdf", invoice_id=invoice.id, _external=True)
    return Invoice(
        id=invoice.id, number=invoice.number, stripe_invoice_number=invoice.stripe_invoice_number,
        kind=invoice.kind, amount=invoice.total,
        currency=invoice.currency, status=invoice.status,
        issued_at=invoice.issued_at, paid_at=invoice.paid_at, period_start=invoice.period_start,
        period_end=invoice.period_end, pdf_url=pdf_url,
        issuedAt=invoice.issued_at, paidAt=invoice.paid_at, periodStart=invoice.period_start,
        periodEnd=invoice.period_end, pdfUrl=pdf_url,
        lines=[InvoiceLine(description=line.description, quantity=line.quantity,
                           unit_amount=line.unit_amount if line.unit_amount is not None
                           else invoices.unit_amount_of(line.amount, line.quantity),
                           amount=line.amount) for line in invoice.lines] if lines else None)


def _list(account_id: str, query: PageQuery) -> InvoiceList:
    page = invoices.list_for(account_id, **query.page())
    data = [invoice_answer(invoice) for invoice in page.items]
    # `invoices` carries the same items: the shape this endpoint's first clients read.
    return InvoiceList(data=data, invoices=data, has_more=page.has_more)


@bp.get("/billing/invoices")
@operation(ACCOUNT_KEY, "Invoices", "Invoices, newest first", InvoiceList, query=PageQuery,
           permission=members.READ)
def list_invoices(query: PageQuery) -> InvoiceList:
    return _list(account().id, query)


@bp.get("/accounts/<account_id>/invoices")
@operation(ACCOUNT_OR_STAFF_KEY, "Invoices", "An account's invoices (its own key, or staff)",
           InvoiceList, query=PageQuery,
           permission=members.READ)
def account_invoices(account_id: str, query: PageQuery) -> InvoiceList:
    if current_key().kind != KIND_STAFF and account_id != account().id:
        raise NotFound(f"No such account: {account_id}", param="account_id")
    return _list(account_id, query)


def _owned(invoice_id: str) -> InvoiceRow:
    key = current_key()
    return invoices.get(invoice_id, account_id=None if key.kind == KIND_STAFF else g.account.id)


@bp.get("/invoices/<invoice_id>")
@operation(ACCOUNT_OR_STAFF_KEY, "Invoices", "An invoice with its lines", Invoice,
           permission=members.READ)
def get_invoice(invoice_id: str) -> Invoice:
    return invoice_answer(_owned(invoice_id), lines=True)


@bp.get("/invoices/<invoice_id>/pdf")
@operation(ACCOUNT_OR_STAFF_KEY, "Invoices", "An invoice as PDF", Binary((PDF, OCTET)),
           description="A PDF; sent as application/octet-stream to a client that asks for that "
                       "(`Accept: application/octet-stream`).",
           permission=members.READ)
def invoice_pdf(invoice_id: str) -> Response:
    response = pdf_response(_owned(invoice_id))
    if request.accept_mimetypes.best_match([PDF, OCTET]) == OCTET:
        response.mimetype = OCTET
    return response
