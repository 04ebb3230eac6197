"""Stripe API version 2026-10-28.endive: the shapes this server answers in.

localstripe answers in the shapes of Stripe's API from about 2020 (its events even say
``api_version: 2017-08-15``). The official ``stripe`` library Tally uses (16.1) is generated
for ``2026-10-28.endive`` and sends that version on every request, so real Stripe answers
in that version's shapes. Since ``2025-03-31.basil`` these differ in ways a billing app
reads:

* an invoice has no ``subscription``, ``payment_intent`` or ``charge``: where it comes from
  is its ``parent`` (``parent.subscription_details.subscription``), and what paid it is an
  invoice payment (``GET /v1/invoice_payments?invoice=in_...``, ``payment.payment_intent``);
* an invoice line has no ``type``, ``subscription_item``, ``proration``, ``plan`` or
  ``price``: they moved into the line's ``parent`` and ``pricing``;
* a PaymentIntent or Charge has no ``invoice``;
* a subscription has no ``current_period_start``/``_end`` (each item has its own), nor
  ``plan``, ``quantity``, ``discount``, ``tax_percent``;
* a customer's ``account_balance`` is ``balance``;
* a PaymentIntent is created with ``allowed_payment_method_types``, no longer
  ``payment_method_types`` (which it still answers with).

``install()`` patches each resource's ``_export`` (what every answer, list, expansion and
event snapshot is built from) to drop what the version no longer has and add what it has
instead; localstripe's internals keep using the old attributes. Events carry
``api_version: API_VERSION``. ``check_version`` answers 400 to a request whose
``Stripe-Version`` header asks for another version, because this server speaks only one.

The ``stripe`` library's typed classes (``stripe.Invoice``, ``stripe.InvoiceLineItem``,
...) declare every field of the version; ``tests/test_stripe_definitions.py`` checks this
server's answers against them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Customer,
    Event,
    Invoice,
    InvoiceLineItem,
    List,
    PaymentIntent,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionItem,
    store,
)

from .common import as_str, fail, no_such, now, page_of, unknown

API_VERSION = "2026-10-28.endive"


# --- Invoice payments ---------------------------------------------------------------------


class InvoicePayment:
    """``invoice_payment``: one attempt to pay an invoice, derived from the PaymentIntent
    localstripe made for it (``PaymentIntent.invoice``, kept internally). The id is stable
    (``inpay_`` + the PaymentIntent's), so retrieving and listing agree."""

    object = "invoice_payment"

    def __init__(self, pi: PaymentIntent) -> None:
        self.id = "inpay_" + pi.id.removeprefix("pi_")
        self._pi = pi

    def _export(self, expand: list[str] | None = None) -> dict[str, Any]:
        pi = self._pi
        invoice: Invoice = Invoice._api_retrieve(pi.invoice)
        status = {"succeeded": "paid", "canceled": "canceled"}.get(pi.status, "open")
        paid_at = pi.latest_charge.created if status == "paid" and pi.latest_charge else None
        return {
            "id": self.id, "object": "invoice_payment", "created": pi.created,
            "livemode": False, "invoice": invoice.id, "currency": pi.currency,
            "amount_requested": pi.amount,
            "amount_paid": pi.amount if status == "paid" else None,
            "is_default": invoice.payment_intent == pi.id,
            "payment": {"type": "payment_intent", "payment_intent": pi.id},
            "status": status,
            "status_transitions": {"paid_at": paid_at,
                                   "canceled_at": getattr(pi, "_ext_canceled_at", None)},
        }


def _invoice_payments(invoice_id: str | None = None) -> list[InvoicePayment]:
    """Newest first, as Stripe lists them."""
    return [InvoicePayment(pi) for key, pi in reversed(store.items())
            if key.startswith("payment_intent:") and getattr(pi, "invoice", None)
            and invoice_id in (None, pi.invoice)]


def list_invoice_payments(invoice: Any = None, payment: Any = None, status: Any = None,
                          limit: Any = None, starting_after: Any = None, **extra: Any) -> Any:
    """``GET /v1/invoice_payments``: ``invoice``, ``payment[type]=payment_intent`` with
    ``payment[payment_intent]``, ``status``, ``limit``, ``starting_after``."""
    unknown(extra)
    if invoice is not None:
        invoice = as_str(invoice, "invoice")
        if store.get("invoice:" + invoice) is None:
            no_such("invoice", invoice, "invoice")
    payments = _invoice_payments(invoice)
    if payment is not None:
        if not isinstance(payment, dict) or payment.get("type") != "payment_intent":
            fail("Invalid payment: only payment[type]=payment_intent is supported.", "payment")
        wanted = payment.get("payment_intent")
        payments = [p for p in payments if wanted in (None, p._pi.id)]
    if status is not None:
        payments = [p for p in payments if p._export()["status"] == status]
    return page_of("/v1/invoice_payments", payments, limit, starting_after)


def retrieve_invoice_payment(id: str, **extra: Any) -> InvoicePayment:
    unknown(extra)
    found = next((p for p in _invoice_payments() if p.id == id), None)
    if found is None:
        no_such("invoice_payment", id)
    return found


# --- Shapes -------------------------------------------------------------------------------


def number_prefix(customer: str) -> str:
    """The customer's ``invoice_prefix``: its invoices are numbered ``PREFIX-0001``, ..."""
    return hashlib.sha1(customer.encode()).hexdigest()[:8].upper()


def _customer(self: Customer, data: dict[str, Any]) -> dict[str, Any]:
    return {"balance": data.get("account_balance") or 0, "invoice_prefix": number_prefix(self.id)}


def _subscription(self: Subscription, data: dict[str, Any]) -> dict[str, Any]:
    return {"discounts": []}


def _subscription_item(self: SubscriptionItem, data: dict[str, Any]) -> dict[str, Any]:
    return {"discounts": []}


def _invoice(self: Invoice, data: dict[str, Any]) -> dict[str, Any]:
    parent = None
    if self.subscription is not None:
        sub = store.get("subscription:" + self.subscription)
        parent = {"type": "subscription_details", "quote_details": None,
                  "subscription_details": {
                      "subscription": self.subscription,
                      "metadata": dict(sub.metadata or {}) if sub is not None else {},
                      "subscription_proration_date": None}}
    status = data["status"]
    transitions = data["status_transitions"]
    return {
        "parent": parent,
        "default_tax_rates": data["default_tax_rates"] or [],
        "amount_remaining": 0 if status in ("paid", "void") else data["amount_due"],
        "amount_overpaid": 0,
        "discounts": [],
        "total_taxes": [],
        "total_discount_amounts": [],
        "subtotal_excluding_tax": data["subtotal"],
        "total_excluding_tax": data["total"],
        "effective_at": transitions.get("finalized_at"),
        "status_transitions": {"marked_uncollectible_at": None, **transitions},
        # Stripe sets both to the creation time when there is no subscription period.
        "period_start": data["period_start"] or data["created"],
        "period_end": data["period_end"] or data["created"],
    }


def _line(self: InvoiceLineItem, data: dict[str, Any]) -> dict[str, Any]:
    details = {"invoice_item": None, "proration": bool(self.proration),
               "proration_details": {"credited_items": None}, "subscription": self.subscription}
    if self.type == "subscription":
        parent = {"type": "subscription_item_details", "invoice_item_details": None,
                  "subscription_item_details": {**details,
                                                "subscription_item": self.subscription_item}}
    else:
        parent = {"type": "invoice_item_details", "subscription_item_details": None,
                  "invoice_item_details": {**details, "invoice_item": self.invoice_item}}
    pricing = None
    if self.plan is not None:
        pricing = {"type": "price_details",
                   "price_details": {"price": self.plan.id, "product": self.plan.product},
                   "unit_amount_decimal": str(self.plan.amount)}
    return {"parent": parent, "pricing": pricing, "subtotal": data["amount"], "taxes": [],
            "discount_amounts": [], "discountable": not self.proration, "discounts": [],
            "pretax_credit_amounts": [], "quantity_decimal": str(data["quantity"])}


def _payment_intent(self: PaymentIntent, data: dict[str, Any]) -> dict[str, Any]:
    return {"amount_received": data["amount"] if data["status"] == "succeeded" else 0,
            "canceled_at": getattr(self, "_ext_canceled_at", None),
            "payment_method_types": ["card"],
            "description": getattr(self, "description", None)}


# What each object loses in API_VERSION (fields of older versions), and what it gains.
SHAPES: list[tuple[type, tuple[str, ...], Callable[[Any, dict[str, Any]], dict[str, Any]] | None]] = [
    (Customer, ("account_balance", "business_vat_id"), _customer),
    (Subscription, ("current_period_start", "current_period_end", "discount", "plan", "quantity",
                    "tax_percent", "trial_from_plan", "trial_period_days"), _subscription),
    (SubscriptionItem, ("invoice", "livemode"), _subscription_item),
    (Invoice, ("subscription", "payment_intent", "charge", "application_fee", "date", "discount",
               "tax", "tax_percent", "total_tax_amounts"), _invoice),
    (InvoiceLineItem, ("type", "subscription_item", "invoice_item", "proration", "plan", "price",
                       "tax_amounts", "tax_rates", "created"), _line),
    (PaymentIntent, ("invoice", "charges"), _payment_intent),
    (Charge, ("invoice",), None),
    (Plan, ("name", "statement_descriptor"), None),  # localstripe's "API <= 2018-02-05"
    (List, ("total_count",), None),  # Stripe's lists have no count (it was dropped long ago)
]


def _pinned_export(cls: type, drop: tuple[str, ...],
                   add: Callable[[Any, dict[str, Any]], dict[str, Any]] | None) -> None:
    original = cls._export

    def _export(self: Any, expand: list[str] | None = None) -> dict[str, Any]:
        data = original(self, expand=expand)
        extra = add(self, data) if add else {}  # reads the old fields before they go
        for key in drop:
            data.pop(key, None)
        data.update(extra)
        return data

    cls._export = _export


# --- Events and requests ------------------------------------------------------------------

_original_event_init = Event.__init__


def _event_init(self: Event, type: str, data: Any) -> None:
    _original_event_init(self, type, data)
    self.api_version = API_VERSION


def _cancel_payment_intent(cls: type[PaymentIntent], id: str, **kwargs: Any) -> PaymentIntent:
    pi = _original_cancel(cls, id, **kwargs)
    pi._ext_canceled_at = now()
    return pi


_original_cancel = PaymentIntent.__dict__["_api_cancel"].__func__


@web.middleware
async def check_version(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """A ``Stripe-Version`` other than ``API_VERSION`` is refused: this server cannot answer
    in another version's shapes. Without the header (Stripe.js, curl) it answers in
    ``API_VERSION``, as Stripe answers in the account's default version."""
    asked = request.headers.get("Stripe-Version")
    if asked is not None and asked != API_VERSION:
        raise UserError(400, f"localstripe-ext answers only in Stripe API version {API_VERSION}; "
                             f"this request asked for {asked}.", {"param": "Stripe-Version"})
    response: web.StreamResponse = await handler(request)
    response.headers["Stripe-Version"] = API_VERSION
    return response


# --- Stripe's test payment method ids -----------------------------------------------------

# Stripe turns these ids into a new PaymentMethod of the card each time they are used, so
# attaching ``pm_card_visa`` answers with a new ``pm_...`` id; the app must use that id.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_threeDSecureRequired": "4000000000003063",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeCustomerFail": "4000000000000341",
}


def _test_payment_method(cls: type[PaymentMethod], id: str) -> PaymentMethod | None:
    number = TEST_PAYMENT_METHODS.get(id)
    if number is None:
        return None
    return PaymentMethod(type="card", card={"number": number, "exp_month": "12",
                                             "exp_year": "2034", "cvc": "123"})


_original_retrieve_payment_method = PaymentMethod.__dict__["_api_retrieve"].__func__


def _retrieve_payment_method(cls: type[PaymentMethod], id: str) -> PaymentMethod:
    """Stripe's 404 ("No such PaymentMethod: 'pm_x'"); localstripe says "Not Found"."""
    try:
        return _original_retrieve_payment_method(cls, id)
    except UserError as error:
        if error.code != 404:
            raise
        no_such("PaymentMethod", id, "payment_method")


def _create_payment_intent(cls: type[PaymentIntent], **params: Any) -> PaymentIntent:
    """``allowed_payment_method_types`` is what ``payment_method_types`` became in
    2026-10-28.endive; the old name is a parameter Stripe no longer knows."""
    if "payment_method_types" in params:
        unknown({"payment_method_types": params["payment_method_types"]})
    if "allowed_payment_method_types" in params:
        params["payment_method_types"] = params.pop("allowed_payment_method_types")
    return _original_create_payment_intent(cls, **params)


_original_create_payment_intent = PaymentIntent.__dict__["_api_create"].__func__


def removed_upcoming_invoice(**params: Any) -> None:
    """``GET /v1/invoices/upcoming`` is gone since 2025-03-31 (localstripe still serves it)."""
    fail("Unrecognized request URL (GET: /v1/invoices/upcoming). The upcoming invoice "
         "endpoint was removed in API version 2025-03-31.basil: use POST "
         "/v1/invoices/create_preview.", status=404)


ROUTES = [
    ("GET", "/v1/invoices/upcoming", removed_upcoming_invoice),
    ("GET", "/v1/invoice_payments", list_invoice_payments),
    ("GET", "/v1/invoice_payments/{id}", retrieve_invoice_payment),
]


def install() -> None:
    for cls, drop, add in SHAPES:
        _pinned_export(cls, drop, add)
    Event.__init__ = _event_init
    PaymentIntent._api_cancel = classmethod(_cancel_payment_intent)
    PaymentIntent._api_create = classmethod(_create_payment_intent)
    PaymentMethod._try_get_canonical_test_article = classmethod(_test_payment_method)
    PaymentMethod._api_retrieve = classmethod(_retrieve_payment_method)
