"""Subscriptions (mirrored from Stripe) and invoices (issued by Tally, immutable)."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigIntPK, Model, UTCDateTime, public_id, utcnow


class Subscription(Model):
    """What Tally last read from Stripe about an account's subscription."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's sub_...
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    plan: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    price_id: Mapped[str] = mapped_column(String(255))
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    cancel_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


INVOICE_RECEIPT = "receipt"  # a card top-up
INVOICE_SUBSCRIPTION = "subscription"  # a subscription's first invoice, paid at Stripe
INVOICE_RENEWAL = "renewal"  # the invoice of a later period, paid at Stripe
INVOICE_STATEMENT = "usage_statement"  # a month of rated usage drawn from credit
INVOICE_KINDS = (INVOICE_RECEIPT, INVOICE_SUBSCRIPTION, INVOICE_RENEWAL, INVOICE_STATEMENT)
INVOICE_KIND_LABELS = {INVOICE_RECEIPT: "Top-up receipt", INVOICE_SUBSCRIPTION: "Subscription",
                       INVOICE_RENEWAL: "Subscription renewal", INVOICE_STATEMENT: "Usage statement"}


class Invoice(Model):
    """Issued once, never changed. `number` has no gaps per customer."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("customer_id", "number", name="uq_invoices_customer_number"),
        UniqueConstraint("kind", "source_id", name="uq_invoices_source"),  # issued once per cause
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "inv"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    number: Mapped[str] = mapped_column(String(40))
    # Stripe's number for the same invoice (subscription invoices), so support can match them.
    stripe_invoice_number: Mapped[str | None] = mapped_column(String(64))
    # The customer's billing address when the invoice was issued (it never changes after).
    billing_address: Mapped[dict[str, str] | None] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="paid")
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[InvoiceLine]] = relationship(order_by="InvoiceLine.id")


class InvoiceLine(Model):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    description: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(BigInteger, default=1)
    unit_amount: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
