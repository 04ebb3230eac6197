"""Invoice PDFs as HTTP answers (the document itself is rendered in documents/invoices.py)."""

from __future__ import annotations

from flask import Response

from documents.invoices import pdf_bytes, pdf_filename
from models import Invoice


def pdf_response(invoice: Invoice) -> Response:
    return Response(pdf_bytes(invoice), mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{pdf_filename(invoice)}"'})
