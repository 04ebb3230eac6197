"""Stripe's objects as Tally reads them, in the API version Tally pins (no `stripe` import).

Every field Tally reads is declared in `FIELDS_READ` and read through `read`;
`tests/test_stripe_definitions.py` proves each one exists in the `stripe` library's typed
class for that object in `API_VERSION` (so a field Stripe removes fails a test, not
production) and that the simulator answers with it. The gateway (gateway.py, the one
module that imports `stripe`) turns each answer into the small dataclasses here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from services.errors import InvalidInput

API_VERSION = "2026-10-28.endive"

# Every field path Tally reads, by Stripe object type (`object` as Stripe names it).
# `read` refuses a path that is not here, so this list is exactly what Tally depends on.
FIELDS_READ: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "event": ("id", "type", "api_version", "data.object"),
    "customer": ("id", "invoice_settings.default_payment_method"),
    "price": ("id",),
    "payment_method": ("id", "customer", "card.brand", "card.last4", "card.exp_month",
                       "card.exp_year"),
    "setup_intent": ("id", "client_secret", "status", "customer", "payment_method"),
    "payment_intent": ("id", "object", "amount", "currency", "status", "customer",
                       "client_secret", "metadata", "last_payment_error.message",
                       "last_payment_error.code", "payment_method"),
    "subscription": ("id", "object", "status", "customer", "metadata", "items.data",
                     "cancel_at_period_end", "cancel_at", "latest_invoice"),
    "subscription_item": ("price.id", "current_period_start", "current_period_end"),
    "invoice": ("id", "object", "customer", "status", "currency", "amount_paid", "number",
                "billing_reason", "parent.subscription_details.subscription", "period_start",
                "period_end", "status_transitions.paid_at", "lines.data"),
    "line_item": ("description", "quantity", "amount", "parent.type",
                  "pricing.price_details.price", "pricing.unit_amount_decimal"),
    "invoice_payment": ("is_default", "payment.payment_intent"),
    "checkout.session": ("id", "object", "url", "subscription"),
    "billing_portal.session": ("url",),
    "billing_portal.configuration": ("id", "active", "is_default"),
}.items()}


def read(data: Mapping[str, Any] | None, object_type: str, path: str) -> Any:
    """The value at `path` ("a.b.c") of a Stripe object of `object_type`; None where a part
    is missing or null. Only paths declared in `FIELDS_READ` may be read."""
    if path not in FIELDS_READ[object_type]:
        raise KeyError(f"{object_type}.{path} is not in FIELDS_READ; declare it there first")
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class PaymentIntentInfo:
    id: str
    amount: int
    currency: str
    status: str
    customer: str | None
    client_secret: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    last_error: str | None = None
    last_error_code: str | None = None  # card_declined, authentication_required, ...
    payment_method: str | None = None  # the card it is paid with (None after a decline)


@dataclass(frozen=True)
class PaymentMethodInfo:
    id: str
    customer: str | None
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class SetupIntentInfo:
    id: str
    client_secret: str
    status: str


@dataclass(frozen=True)
class SubscriptionInfo:
    id: str
    status: str
    customer: str
    price_id: str | None
    metadata: dict[str, str]
    current_period_start: int | None  # the item's: subscriptions have no period of their own
    current_period_end: int | None
    cancel_at_period_end: bool
    cancel_at: int | None
    latest_invoice: str | None


@dataclass(frozen=True)
class InvoiceLineInfo:
    description: str | None
    quantity: int
    amount: int
    unit_amount: int | None  # Stripe's unit price, when it is a whole number of minor units
    price_id: str | None
    from_subscription: bool  # the line bills a subscription item (not a one-off item)


@dataclass(frozen=True)
class InvoiceInfo:
    id: str
    number: str | None  # Stripe's own invoice number, e.g. 7081B96C-0002
    customer: str | None
    subscription: str | None  # the invoice's parent subscription, if it bills one
    billing_reason: str | None  # subscription_create (the first), subscription_cycle, ...
    status: str
    currency: str
    amount_paid: int
    period_start: int | None
    period_end: int | None
    paid_at: int | None
    lines: list[InvoiceLineInfo]


@dataclass(frozen=True)
class VerifiedEvent:
    id: str
    type: str
    payload: str
    api_version: str | None  # the version Stripe rendered the payload in (the endpoint's)
    data_object: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def object_id(self, object_type: str) -> str | None:
        """The id of `data.object` when it is a `object_type` (its `object` field); else
        None: the event is not in a shape Tally understands."""
        if read(self.data_object, object_type, "object") != object_type:
            return None
        value = read(self.data_object, object_type, "id")
        return value if isinstance(value, str) and value else None


# What Tally stores of an event: ids and types as Stripe writes them, within their columns.
_EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")


def parse_event(payload: str) -> VerifiedEvent:
    """An event's envelope: what Tally reads of an event, the same in every API version
    (its id, type, `api_version` and `data.object`, of which only `id` and `object`).
    Handlers fetch the object itself from Stripe, in `API_VERSION`. A body that is not an
    event (not JSON, nested however deep, an id or type Tally could not store) is a 400
    `invalid_payload` and nothing is stored."""
    try:
        event = json.loads(payload)
        if not isinstance(event, Mapping):
            raise ValueError("not a JSON object")
        event_id, event_type = read(event, "event", "id"), read(event, "event", "type")
        if not (isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id)
                and isinstance(event_type, str) and _EVENT_TYPE.fullmatch(event_type)):
            raise ValueError("not a Stripe event id and type")
        data = event.get("data", {})  # absent in a thin event, which is stored and refused
        if not isinstance(data, Mapping) or not isinstance(data.get("object", {}), Mapping):
            raise ValueError("data and data.object are objects when present")
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("The webhook payload is not a Stripe event.",
                           code="invalid_payload") from exc
    obj = read(event, "event", "data.object")
    version = read(event, "event", "api_version")
    return VerifiedEvent(event_id, event_type, payload,
                         api_version=version if isinstance(version, str) else None,
                         data_object=obj if isinstance(obj, Mapping) else {})


def intent_info(data: dict[str, Any]) -> PaymentIntentInfo:
    """A PaymentIntent as Tally reads it."""
    def get(path: str) -> Any:
        return read(data, "payment_intent", path)

    return PaymentIntentInfo(
        id=str(get("id")),
        amount=int(get("amount")),
        currency=str(get("currency")).lower(),
        status=str(get("status")),
        customer=id_of(get("customer")),
        client_secret=get("client_secret"),
        metadata=dict(get("metadata") or {}),
        last_error=get("last_payment_error.message"),
        last_error_code=get("last_payment_error.code"),
        payment_method=id_of(get("payment_method")),
    )


def payment_method_info(data: dict[str, Any]) -> PaymentMethodInfo:
    """A card PaymentMethod as Tally reads it."""
    def get(path: str) -> Any:
        return read(data, "payment_method", path)

    return PaymentMethodInfo(
        id=str(get("id")), customer=id_of(get("customer")), brand=str(get("card.brand") or "card"),
        last4=str(get("card.last4") or ""), exp_month=int(get("card.exp_month") or 0),
        exp_year=int(get("card.exp_year") or 0))


def setup_intent_info(data: dict[str, Any]) -> SetupIntentInfo:
    """A SetupIntent as Tally reads it."""
    return SetupIntentInfo(id=str(read(data, "setup_intent", "id")),
                           client_secret=str(read(data, "setup_intent", "client_secret") or ""),
                           status=str(read(data, "setup_intent", "status")))


def id_of(value: Any) -> str | None:
    """An id whether Stripe gave the id or the expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def subscription_info(data: dict[str, Any]) -> SubscriptionInfo:
    """A subscription as Tally reads it (its period from its first item)."""
    def get(path: str) -> Any:
        return read(data, "subscription", path)

    item = (get("items.data") or [{}])[0]
    return SubscriptionInfo(
        id=str(get("id")), status=str(get("status")), customer=id_of(get("customer")) or "",
        price_id=read(item, "subscription_item", "price.id"),
        metadata=dict(get("metadata") or {}),
        current_period_start=read(item, "subscription_item", "current_period_start"),
        current_period_end=read(item, "subscription_item", "current_period_end"),
        cancel_at_period_end=bool(get("cancel_at_period_end")),
        cancel_at=get("cancel_at"), latest_invoice=id_of(get("latest_invoice")))


def invoice_info(data: dict[str, Any]) -> InvoiceInfo:
    """An invoice as Tally reads it (its subscription from `parent`)."""
    def get(path: str) -> Any:
        return read(data, "invoice", path)

    return InvoiceInfo(
        id=str(get("id")), number=get("number"), customer=id_of(get("customer")),
        subscription=id_of(get("parent.subscription_details.subscription")),
        billing_reason=get("billing_reason"), status=str(get("status")),
        currency=str(get("currency") or "usd").lower(),
        amount_paid=int(get("amount_paid") or 0),
        period_start=get("period_start"), period_end=get("period_end"),
        paid_at=get("status_transitions.paid_at"),
        lines=[line_info(line) for line in get("lines.data") or []])


def line_info(data: dict[str, Any]) -> InvoiceLineInfo:
    """An invoice line as Tally reads it (its price from `pricing`)."""
    def get(path: str) -> Any:
        return read(data, "line_item", path)

    return InvoiceLineInfo(
        description=get("description"), quantity=int(get("quantity") or 1),
        amount=int(get("amount") or 0), unit_amount=_whole(get("pricing.unit_amount_decimal")),
        price_id=id_of(get("pricing.price_details.price")),
        from_subscription=get("parent.type") == "subscription_item_details")


def _whole(value: Any) -> int | None:
    """A decimal string (or Decimal) of minor units, if it is a whole number."""
    try:
        number = Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None
    return int(number) if number is not None and number == number.to_integral_value() else None
