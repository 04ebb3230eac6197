"""Invoices and receipts: issued once per cause, numbered without gaps per customer.

An invoice is never changed after it is issued; there is no update path. The number
comes from `customers.invoice_seq`, bumped under a row lock in the same transaction as
the insert, so a failed issue leaves no gap and concurrent issues never share a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from extensions import db
from models import Account, Customer, Invoice, InvoiceLine
from models.base import utcnow
from models.billing import INVOICE_KIND_LABELS, INVOICE_STATEMENT
from services import uow
from services.errors import NotFound
from services.notifications import notices
from services.pagination import Page, paginate


@dataclass(frozen=True)
class Line:
    """One invoice line. `unit_amount` defaults to amount / quantity when that is a whole
    number of minor units; otherwise it stays None (an average such as 0.0005 a call is
    not a price, and the PDF would show it rounded to $0.00)."""

    description: str
    amount: int
    quantity: int = 1
    unit_amount: int | None = None

    def __post_init__(self) -> None:
        if self.unit_amount is None and self.quantity > 0 and self.amount % self.quantity == 0:
            object.__setattr__(self, "unit_amount", self.amount // self.quantity)


def unit_amount_of(amount: int, quantity: int) -> int:
    """amount / quantity in whole minor units, rounded half away from zero (the whole
    amount when the quantity is not positive)."""
    if quantity <= 0:
        return amount
    units, rest = divmod(abs(amount), quantity)
    units += 2 * rest >= quantity
    return -units if amount < 0 else units


def number_prefix(customer_id: str) -> str:
    """The customer's part of its invoice numbers (`W8Y9QUZS` in `W8Y9QUZS-0005`)."""
    return customer_id.split("_", 1)[-1][:8].upper()


def issue(account: Account, *, kind: str, source_id: str, lines: list[Line], currency: str,
          paid_at: datetime | None = None, status: str = "paid",
          period: tuple[datetime, datetime] | None = None,
          stripe_invoice_number: str | None = None) -> Invoice:
    """Issue the invoice for this cause, or return the one already issued."""
    # The customer's row lock (the write lock on SQLite) serialises its invoice numbers:
    # whoever waited for it sees an invoice issued meanwhile, and takes no number.
    customer = uow.lock(Customer, account.customer_id)
    existing = find(kind, source_id)
    if existing is not None:
        return existing
    seq = db.session.execute(
        update(Customer).where(Customer.id == account.customer_id)
        .values(invoice_seq=Customer.invoice_seq + 1).returning(Customer.invoice_seq)
    ).scalar_one()
    invoice = Invoice(
        customer_id=account.customer_id, account_id=account.id,
        billing_address=customer.billing_address if customer else None,
        number=f"{number_prefix(account.customer_id)}-{seq:04d}", kind=kind, source_id=source_id,
        stripe_invoice_number=stripe_invoice_number,
        status=status, currency=currency, total=sum(line.amount for line in lines),
        period_start=period[0] if period else None, period_end=period[1] if period else None,
        issued_at=utcnow(), paid_at=paid_at)
    db.session.add(invoice)
    db.session.flush()
    db.session.add_all([
        InvoiceLine(invoice_id=invoice.id, description=line.description[:255],
                    quantity=line.quantity, unit_amount=line.unit_amount, amount=line.amount)
        for line in lines])
    if kind != INVOICE_STATEMENT and status == "paid":
        notices.receipt(account, invoice.id, invoice.number, invoice.total,
                        INVOICE_KIND_LABELS.get(kind, "Invoice"))
    return invoice


def find(kind: str, source_id: str) -> Invoice | None:
    """The invoice issued for this cause, if any."""
    return db.session.execute(
        select(Invoice).where(Invoice.kind == kind, Invoice.source_id == source_id)
    ).scalar_one_or_none()


def get(invoice_id: str, *, account_id: str | None) -> Invoice:
    """The invoice if it belongs to `account_id` (None: staff, any account); else 404."""
    invoice = db.session.execute(
        select(Invoice).options(selectinload(Invoice.lines)).where(Invoice.id == invoice_id)
    ).scalar_one_or_none()
    if invoice is None or (account_id is not None and invoice.account_id != account_id):
        raise NotFound(f"No such invoice: {invoice_id}", param="id")
    return invoice


def list_for(account_id: str, *, limit: int, starting_after: str | None = None,
             ending_before: str | None = None) -> Page[Invoice]:
    """The account's invoices, newest first, a page at a time."""
    return paginate(select(Invoice).where(Invoice.account_id == account_id), Invoice,
                    Invoice.issued_at, limit=limit, starting_after=starting_after,
                    ending_before=ending_before)
