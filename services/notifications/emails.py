"""Email through the outbox: queued with the operation that causes it, sent after its commit.

`queue_email` records the message in the current unit of work; the `email` handler renders
what is attached (an invoice's PDF, from the invoice as it is then) and hands the message to
the mailer. With no email delivery set up (`SMTP_URL` unset) nothing is queued.
"""

from __future__ import annotations

from typing import Any

from documents.invoices import pdf_bytes, pdf_filename
from extensions import db
from models import Invoice
from services.notifications import mailer, outbox

EMAIL = "email"


def queue_email(to: str, subject: str, text: str, *, customer_id: str | None = None,
                invoice_pdf: str | None = None, dedupe_key: str | None = None,
                html: str | None = None) -> bool:
    """Queue one email (with the PDF of invoice `invoice_pdf` attached, if given).

    Returns False, queuing nothing, when Tally has no email delivery set up.
    """
    if not mailer.configured():
        return False
    payload: dict[str, Any] = {"to": to, "subject": subject, "text": text}
    if invoice_pdf:
        payload["invoice_pdf"] = invoice_pdf
    if html:
        payload["html"] = html
    outbox.enqueue(EMAIL, payload, dedupe_key=dedupe_key, customer_id=customer_id)
    return True


@outbox.handler(EMAIL)
def _send(payload: dict[str, Any]) -> None:
    attachments: tuple[mailer.Attachment, ...] = ()
    if payload.get("invoice_pdf"):
        invoice = db.session.get(Invoice, payload["invoice_pdf"])
        if invoice is None:
            raise LookupError(f"invoice {payload['invoice_pdf']} no longer exists")
        attachments = (mailer.Attachment(pdf_filename(invoice), pdf_bytes(invoice)),)
    mailer.send(payload["to"], payload["subject"], payload["text"], attachments,
                html=payload.get("html"))
