"""Invoice documents: one template, two renderings, the HTML page and the PDF (WeasyPrint)."""

from __future__ import annotations

from flask import render_template

from extensions import db
from models import Account, Invoice


def document_html(invoice: Invoice) -> str:
    account = db.session.get(Account, invoice.account_id)
    return render_template("invoices/document.html", invoice=invoice, account=account,
                           customer=account.customer if account else None, standalone=True)


def pdf_bytes(invoice: Invoice) -> bytes:
    from weasyprint import HTML  # imported on use: it loads Pango and fonts

    pdf: bytes = HTML(string=document_html(invoice)).write_pdf()
    return pdf


def pdf_filename(invoice: Invoice) -> str:
    return f"invoice-{invoice.number}.pdf"
