"""Invoices and receipts.

`paidAt` and `pdfUrl` are the generic billing API's names, and `issuedAt`, `periodStart`
and `periodEnd` were named like them; each also comes as snake_case (`paid_at`, ...), the
casing of every other Tally object, so a client may read either.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from views.api.schemas.common import Answer, Currency, ListOf, Money, Time

URL = Field(json_schema_extra={"format": "uri"})
InvoiceKind = Literal["receipt", "subscription", "renewal", "usage_statement"]  # models.billing.INVOICE_KINDS


class InvoiceLine(Answer):
    description: str
    quantity: int
    unit_amount: int = Field(description="The price of one; when the amount is not a whole "
                                         "multiple of the quantity, amount / quantity rounded to "
                                         "a minor unit.")
    amount: int


class Invoice(Answer):
    id: str = Field(examples=["inv_Qm3x"])
    object: Literal["invoice"] = "invoice"
    number: str = Field(examples=["ACME-0001"])
    stripe_invoice_number: str | None = Field(
        description="Stripe's number for the same invoice (subscription invoices); null for "
                    "top-up receipts and usage statements, which Stripe does not invoice.",
        examples=["7081B96C-0002"])
    kind: InvoiceKind = Field(description=(
        "receipt: a card top-up; subscription: a subscription's first invoice; renewal: a later "
        "period's; usage_statement: a month of rated usage drawn from credit."))
    amount: Money
    currency: Currency
    status: str = Field(examples=["paid"])
    issued_at: Time
    paid_at: Time | None
    period_start: Time | None
    period_end: Time | None
    pdf_url: str = URL
    issuedAt: Time = Field(description="The same as issued_at.")
    paidAt: Time | None = Field(description="The same as paid_at (the generic billing API's name).")
    periodStart: Time | None = Field(description="The same as period_start.")
    periodEnd: Time | None = Field(description="The same as period_end.")
    pdfUrl: str = Field(description="The same as pdf_url (the generic billing API's name).",
                        json_schema_extra={"format": "uri"})
    lines: list[InvoiceLine] | None = Field(default=None, description="With GET /v1/invoices/{invoice_id}.")


class InvoiceList(ListOf[Invoice]):
    invoices: list[Invoice] = Field(description="The same items as data (the generic billing "
                                                "API's name for them).")
