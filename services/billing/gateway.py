"""The one module that imports `stripe`.

Plain functions over a `stripe.StripeClient` that return small dataclasses and turn
Stripe's errors into Tally's. With `STRIPE_API_BASE` set (tests, demo mode) the same
calls go to localstripe; unset, they go to Stripe.

**API version.** Every request asks for `API_VERSION`, the version the pinned `stripe`
library (pyproject.toml) was generated for, so Stripe answers in the shapes its typed
classes declare. Every field Tally reads is declared in `FIELDS_READ` and read through
`read`; `tests/test_stripe_definitions.py` proves each one exists in the library's class
for that object (so a field Stripe removes fails a test, not production) and that the
simulator answers with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import stripe
from flask import Flask, current_app
from stripe._base_address import BaseAddresses
from stripe.params.billing_portal import ConfigurationCreateParams, ConfigurationUpdateParams
from stripe.params.checkout import SessionCreateParams

from services import uow
from services.errors import InvalidInput, NotFound, PaymentFailed, Unavailable, UpstreamError

API_VERSION = "2026-10-28.endive"

# Every field path Tally reads, by Stripe object type (`object` as Stripe names it).
# `read` refuses a path that is not here, so this list is exactly what Tally depends on.
FIELDS_READ: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "event": ("id", "type", "api_version", "data.object"),
    "customer": ("id",),
    "price": ("id",),
    "payment_method": ("id",),
    "payment_intent": ("id", "object", "amount", "currency", "status", "customer",
                       "client_secret", "metadata", "last_payment_error.message"),
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


MAX_IDEMPOTENCY_KEY = 255  # Stripe refuses longer Idempotency-Key headers


def idempotency(key: str) -> stripe.RequestOptions:
    """A call's request options with `key` as Stripe's idempotency key. A key longer than
    Stripe takes (one a client's own 255-character Idempotency-Key went into) keeps its
    start and ends in the SHA-256 of the whole key: the same key stays the same, and two
    keys stay two."""
    if len(key) > MAX_IDEMPOTENCY_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"{key[:MAX_IDEMPOTENCY_KEY - len(digest) - 1]}-{digest}"
    return {"idempotency_key": key}


class StripeGateway:
    def __init__(self, secret_key: str, api_base: str = "", webhook_secret: str = "") -> None:
        self.configured = bool(secret_key)
        self.webhook_secret = webhook_secret
        base: BaseAddresses | None = {"api": api_base.rstrip("/")} if api_base else None
        self._client = (
            stripe.StripeClient(secret_key, base_addresses=base, max_network_retries=2,
                                stripe_version=API_VERSION)
            if secret_key
            else None
        )

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            raise Unavailable(
                "Card payments are not set up: STRIPE_SECRET_KEY is missing.",
                code="stripe_not_configured",
            )
        return self._client

    # Customers ---------------------------------------------------------------

    def create_customer(
        self, *, name: str, email: str, metadata: dict[str, str], idempotency_key: str
    ) -> str:
        with _translated_errors():
            customer = self.client.v1.customers.create(
                params={"name": name, "email": email, "metadata": metadata},
                options=idempotency(idempotency_key),
            )
        return str(read(customer.to_dict(), "customer", "id"))

    # PaymentIntents ----------------------------------------------------------

    def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        customer: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> PaymentIntentInfo:
        with _translated_errors():
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency,
                    "customer": customer,
                    "metadata": metadata,
                    # `payment_method_types` before API version 2026-10-28.endive
                    "allowed_payment_method_types": ["card"],
                },
                options=idempotency(idempotency_key),
            )
        return _intent_info(intent.to_dict())

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        with _translated_errors():
            intent = self.client.v1.payment_intents.retrieve(payment_intent_id)
        return _intent_info(intent.to_dict())

    # Cards, prices, subscriptions --------------------------------------------

    def attach_default_payment_method(self, customer: str, payment_method: str) -> str:
        """Attach a card to the customer and make it the default for invoices; returns the
        id attaching answered with. For Stripe's test ids (`pm_card_visa`, ...) that is a
        new PaymentMethod: the test id itself never belongs to the customer. A payment
        method Stripe refuses is the caller's fault: `InvalidInput`, `NotFound` (no such
        payment method) or `PaymentFailed` (declined)."""
        with _translated_errors(caller_fault=True):
            attached = self.client.v1.payment_methods.attach(
                payment_method, params={"customer": customer})
        attached_id = str(read(attached.to_dict(), "payment_method", "id"))
        with _translated_errors():
            self.client.v1.customers.update(customer, params={
                "invoice_settings": {"default_payment_method": attached_id}})
        return attached_id

    def find_or_create_price(self, *, lookup_key: str, amount: int, currency: str,
                             interval: str, product_name: str, idempotency_key: str) -> str:
        with _translated_errors():
            found = self.client.v1.prices.list(params={"lookup_keys": [lookup_key], "limit": 1})
            if found.data:
                return str(read(found.data[0].to_dict(), "price", "id"))
            price = self.client.v1.prices.create(
                params={"unit_amount": amount, "currency": currency, "lookup_key": lookup_key,
                        "recurring": {"interval": interval},
                        "product_data": {"name": product_name}},
                options=idempotency(idempotency_key))
        return str(read(price.to_dict(), "price", "id"))

    def create_subscription(self, *, customer: str, price: str, metadata: dict[str, str],
                            idempotency_key: str) -> SubscriptionInfo:
        with _translated_errors():
            sub = self.client.v1.subscriptions.create(
                params={"customer": customer, "items": [{"price": price}], "metadata": metadata},
                options=idempotency(idempotency_key))
        return _subscription_info(sub.to_dict())

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionInfo:
        with _translated_errors():
            sub = self.client.v1.subscriptions.retrieve(subscription_id)
        return _subscription_info(sub.to_dict())

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionInfo:
        with _translated_errors():
            sub = self.client.v1.subscriptions.update(
                subscription_id, params={"cancel_at_period_end": cancel})
        return _subscription_info(sub.to_dict())

    def cancel_subscription(self, subscription_id: str) -> SubscriptionInfo:
        """End a subscription now (used for a first payment that was never made)."""
        with _translated_errors():
            sub = self.client.v1.subscriptions.cancel(subscription_id)
        return _subscription_info(sub.to_dict())

    def invoice_payment_intent(self, invoice_id: str) -> PaymentIntentInfo | None:
        """The PaymentIntent of the invoice's current payment: its default invoice payment
        (`GET /v1/invoice_payments?invoice=`); invoices have no `payment_intent` since API
        version 2025-03-31."""
        with _translated_errors():
            listed = self.client.v1.invoice_payments.list(params={"invoice": invoice_id,
                                                                  "limit": 10})
            payments = [p.to_dict() for p in listed.data]
            chosen = next((p for p in payments if read(p, "invoice_payment", "is_default")),
                          payments[0] if payments else None)
            intent = _id(read(chosen, "invoice_payment", "payment.payment_intent"))
            if intent is None:
                return None
            return _intent_info(self.client.v1.payment_intents.retrieve(intent).to_dict())

    def retrieve_invoice(self, invoice_id: str) -> InvoiceInfo:
        with _translated_errors():
            data = self.client.v1.invoices.retrieve(invoice_id).to_dict()
        return _invoice_info(data)

    def void_open_invoice(self, invoice_id: str) -> str:
        """Void the invoice if it is still `open`, so nothing is owed on it anywhere (the
        Customer Portal, Stripe's emails and retries); returns its status after."""
        with _translated_errors():
            invoice = self.client.v1.invoices.retrieve(invoice_id).to_dict()
            if read(invoice, "invoice", "status") == "open":
                invoice = self.client.v1.invoices.void_invoice(invoice_id).to_dict()
        return str(read(invoice, "invoice", "status"))

    # Hosted pages ----------------------------------------------------------------

    def create_checkout_session(self, *, customer: str, price: str, success_url: str,
                                cancel_url: str, metadata: dict[str, str],
                                idempotency_key: str) -> str:
        params: SessionCreateParams = {
            "mode": "subscription", "customer": customer,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": success_url, "cancel_url": cancel_url,
            "metadata": metadata, "subscription_data": {"metadata": metadata}}
        if "tally_account_id" in metadata:
            params["client_reference_id"] = metadata["tally_account_id"]
        with _translated_errors():
            session = self.client.v1.checkout.sessions.create(
                params=params, options=idempotency(idempotency_key))
        return str(read(session.to_dict(), "checkout.session", "url"))

    def checkout_session_subscription(self, session_id: str) -> str | None:
        with _translated_errors():
            session = self.client.v1.checkout.sessions.retrieve(session_id).to_dict()
        return _id(read(session, "checkout.session", "subscription"))

    def create_portal_session(self, *, customer: str, return_url: str, configuration: str) -> str:
        with _translated_errors():
            session = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer, "return_url": return_url,
                        "configuration": configuration})
        return str(read(session.to_dict(), "billing_portal.session", "url"))

    def list_portal_configurations(self, limit: int = 100) -> list[dict[str, Any]]:
        with _translated_errors():
            page = self.client.v1.billing_portal.configurations.list(params={"limit": limit})
        return [c.to_dict() for c in page.data]

    def retrieve_portal_configuration(self, configuration_id: str) -> dict[str, Any]:
        with _translated_errors():
            return self.client.v1.billing_portal.configurations.retrieve(configuration_id).to_dict()

    def create_portal_configuration(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` in the shape of Stripe's configuration object (checked by the caller's
        declaration, field by field, as clients of Stripe's own API send them)."""
        with _translated_errors():
            return self.client.v1.billing_portal.configurations.create(
                params=cast(ConfigurationCreateParams, params)).to_dict()

    def update_portal_configuration(self, configuration_id: str,
                                    params: Mapping[str, Any]) -> dict[str, Any]:
        with _translated_errors():
            return self.client.v1.billing_portal.configurations.update(
                configuration_id, params=cast(ConfigurationUpdateParams, params)).to_dict()

    # Webhooks ----------------------------------------------------------------

    def verify_event(self, payload: bytes, signature: str | None) -> VerifiedEvent:
        """Check `Stripe-Signature` (and its timestamp) with the official library."""
        if not self.webhook_secret:
            raise Unavailable(
                "Webhooks are not set up: STRIPE_WEBHOOK_SECRET is missing.",
                code="webhook_not_configured",
            )
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), signature or "", self.webhook_secret,
                tolerance=stripe.Webhook.DEFAULT_TOLERANCE,
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
            raise InvalidInput(
                "The Stripe-Signature header does not match this payload, or is too old.",
                code="invalid_signature",
            ) from exc
        return parse_event(payload.decode("utf-8"))


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


def _intent_info(data: dict[str, Any]) -> PaymentIntentInfo:
    def get(path: str) -> Any:
        return read(data, "payment_intent", path)

    return PaymentIntentInfo(
        id=str(get("id")),
        amount=int(get("amount")),
        currency=str(get("currency")).lower(),
        status=str(get("status")),
        customer=_id(get("customer")),
        client_secret=get("client_secret"),
        metadata=dict(get("metadata") or {}),
        last_error=get("last_payment_error.message"),
    )


def _id(value: Any) -> str | None:
    """An id whether Stripe gave the id or the expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _subscription_info(data: dict[str, Any]) -> SubscriptionInfo:
    def get(path: str) -> Any:
        return read(data, "subscription", path)

    item = (get("items.data") or [{}])[0]
    return SubscriptionInfo(
        id=str(get("id")), status=str(get("status")), customer=_id(get("customer")) or "",
        price_id=read(item, "subscription_item", "price.id"),
        metadata=dict(get("metadata") or {}),
        current_period_start=read(item, "subscription_item", "current_period_start"),
        current_period_end=read(item, "subscription_item", "current_period_end"),
        cancel_at_period_end=bool(get("cancel_at_period_end")),
        cancel_at=get("cancel_at"), latest_invoice=_id(get("latest_invoice")))


def _invoice_info(data: dict[str, Any]) -> InvoiceInfo:
    def get(path: str) -> Any:
        return read(data, "invoice", path)

    return InvoiceInfo(
        id=str(get("id")), number=get("number"), customer=_id(get("customer")),
        subscription=_id(get("parent.subscription_details.subscription")),
        billing_reason=get("billing_reason"), status=str(get("status")),
        currency=str(get("currency") or "usd").lower(),
        amount_paid=int(get("amount_paid") or 0),
        period_start=get("period_start"), period_end=get("period_end"),
        paid_at=get("status_transitions.paid_at"),
        lines=[_line_info(line) for line in get("lines.data") or []])


def _line_info(data: dict[str, Any]) -> InvoiceLineInfo:
    def get(path: str) -> Any:
        return read(data, "line_item", path)

    return InvoiceLineInfo(
        description=get("description"), quantity=int(get("quantity") or 1),
        amount=int(get("amount") or 0), unit_amount=_whole(get("pricing.unit_amount_decimal")),
        price_id=_id(get("pricing.price_details.price")),
        from_subscription=get("parent.type") == "subscription_item_details")


def _whole(value: Any) -> int | None:
    """A decimal string (or Decimal) of minor units, if it is a whole number."""
    try:
        number = Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None
    return int(number) if number is not None and number == number.to_integral_value() else None


class _translated_errors:
    """Turn `stripe` exceptions into Tally errors with a clear message.

    `caller_fault`: Stripe refusing the request (400) is the caller's doing, such as a
    payment method Stripe cannot use; it becomes `InvalidInput`, not a 502."""

    def __init__(self, *, caller_fault: bool = False) -> None:
        self.caller_fault = caller_fault

    def __enter__(self) -> None:
        # A network call never waits while the operation holds a row lock (services/uow.py).
        uow.assert_no_writes("A Stripe call")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if exc is None or not isinstance(exc, stripe.StripeError):
            return  # not Stripe's: it goes on as it is
        message = exc.user_message or str(exc)
        if isinstance(exc, stripe.CardError):
            raise PaymentFailed(message, code=exc.code or "card_declined") from exc
        if isinstance(exc, stripe.InvalidRequestError) and (
            exc.code == "resource_missing" or exc.http_status == 404
        ):
            raise NotFound(message, code="resource_missing") from exc
        if isinstance(exc, stripe.APIConnectionError):
            raise Unavailable(
                "Could not reach Stripe; nothing was charged. Try again in a moment.",
                code="stripe_unavailable",
            ) from exc
        if self.caller_fault and isinstance(exc, stripe.InvalidRequestError):
            raise InvalidInput(f"Stripe refused it: {message}", code="stripe_refused") from exc
        raise UpstreamError(f"Stripe refused the request: {message}") from exc


def init_app(app: Flask) -> None:
    app.extensions["tally_stripe"] = StripeGateway(
        app.config["STRIPE_SECRET_KEY"],
        app.config["STRIPE_API_BASE"],
        app.config["STRIPE_WEBHOOK_SECRET"],
    )


def gateway() -> StripeGateway:
    found: StripeGateway = current_app.extensions["tally_stripe"]
    return found
