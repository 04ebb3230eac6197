"""The one module that imports `stripe`.

Plain functions over a `stripe.StripeClient` that return small dataclasses and turn
Stripe's errors into Tally's. With `STRIPE_API_BASE` set (tests, demo mode) the same
calls go to localstripe; unset, they go to Stripe.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import stripe
from flask import Flask, current_app

from services.errors import InvalidInput, NotFound, PaymentFailed, Unavailable, UpstreamError


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
    current_period_start: int | None
    current_period_end: int | None
    cancel_at_period_end: bool
    cancel_at: int | None
    latest_invoice: str | None


@dataclass(frozen=True)
class InvoiceInfo:
    id: str
    customer: str | None
    subscription: str | None
    status: str
    currency: str
    amount_paid: int
    period_start: int | None
    period_end: int | None
    paid_at: int | None
    lines: list[tuple[str, int, int]]  # description, quantity, amount


@dataclass(frozen=True)
class VerifiedEvent:
    id: str
    type: str
    object_id: str | None
    payload: str


MAX_IDEMPOTENCY_KEY = 255  # Stripe refuses longer Idempotency-Key headers


def idempotency(key: str) -> dict[str, str]:
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
        base = {"api": api_base.rstrip("/")} if api_base else None
        self._client = (
            stripe.StripeClient(secret_key, base_addresses=base, max_network_retries=2)
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
        return customer.id

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
                    "payment_method_types": ["card"],
                },
                options=idempotency(idempotency_key),
            )
        return _intent_info(intent)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        with _translated_errors():
            intent = self.client.v1.payment_intents.retrieve(payment_intent_id)
        return _intent_info(intent)

    # Cards, prices, subscriptions --------------------------------------------

    def attach_default_payment_method(self, customer: str, payment_method: str) -> None:
        """Attach a card to the customer and make it the default for invoices."""
        with _translated_errors():
            self.client.v1.payment_methods.attach(payment_method, params={"customer": customer})
            self.client.v1.customers.update(customer, params={
                "invoice_settings": {"default_payment_method": payment_method}})

    def find_or_create_price(self, *, lookup_key: str, amount: int, currency: str,
                             interval: str, product_name: str) -> str:
        with _translated_errors():
            found = self.client.v1.prices.list(params={"lookup_keys": [lookup_key], "limit": 1})
            if found.data:
                return found.data[0].id
            price = self.client.v1.prices.create(
                params={"unit_amount": amount, "currency": currency, "lookup_key": lookup_key,
                        "recurring": {"interval": interval},
                        "product_data": {"name": product_name}},
                options=idempotency(f"tally-price-{lookup_key}"))
        return price.id

    def create_subscription(self, *, customer: str, price: str, metadata: dict[str, str],
                            idempotency_key: str) -> SubscriptionInfo:
        with _translated_errors():
            sub = self.client.v1.subscriptions.create(
                params={"customer": customer, "items": [{"price": price}], "metadata": metadata},
                options=idempotency(idempotency_key))
        return _subscription_info(sub)

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionInfo:
        with _translated_errors():
            return _subscription_info(self.client.v1.subscriptions.retrieve(subscription_id))

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionInfo:
        with _translated_errors():
            sub = self.client.v1.subscriptions.update(
                subscription_id, params={"cancel_at_period_end": cancel})
        return _subscription_info(sub)

    def cancel_subscription(self, subscription_id: str) -> SubscriptionInfo:
        """End a subscription now (used for a first payment that was never made)."""
        with _translated_errors():
            return _subscription_info(self.client.v1.subscriptions.cancel(subscription_id))

    def invoice_payment_intent(self, invoice_id: str) -> PaymentIntentInfo | None:
        """The PaymentIntent paying an invoice: `invoice.payment_intent` before API version
        2025-03-31 (and on localstripe); the invoice's newest payment from then on."""
        with _translated_errors():
            data = self.client.v1.invoices.retrieve(invoice_id).to_dict()
            intent = _id(data.get("payment_intent"))
            if intent is None and "payment_intent" not in data:
                payments = self.client.v1.invoice_payments.list(
                    params={"invoice": invoice_id, "limit": 1}).to_dict().get("data") or []
                intent = _id(((payments[0] if payments else {}).get("payment") or {})
                             .get("payment_intent"))
            if intent is None:
                return None
            return _intent_info(self.client.v1.payment_intents.retrieve(intent))

    def retrieve_invoice(self, invoice_id: str) -> InvoiceInfo:
        with _translated_errors():
            data = self.client.v1.invoices.retrieve(invoice_id).to_dict()
        lines = [(str(line.get("description") or "Subscription"), int(line.get("quantity") or 1),
                  int(line.get("amount") or 0))
                 for line in (data.get("lines") or {}).get("data", [])]
        transitions = data.get("status_transitions") or {}
        return InvoiceInfo(
            id=data["id"], customer=_id(data.get("customer")),
            subscription=_id(data.get("subscription")), status=str(data.get("status")),
            currency=str(data.get("currency", "usd")).lower(),
            amount_paid=int(data.get("amount_paid") or 0),
            period_start=data.get("period_start"), period_end=data.get("period_end"),
            paid_at=transitions.get("paid_at"), lines=lines)

    # Hosted pages ----------------------------------------------------------------

    def create_checkout_session(self, *, customer: str, price: str, success_url: str,
                                cancel_url: str, metadata: dict[str, str],
                                idempotency_key: str) -> str:
        with _translated_errors():
            session = self.client.v1.checkout.sessions.create(
                params={"mode": "subscription", "customer": customer,
                        "line_items": [{"price": price, "quantity": 1}],
                        "success_url": success_url, "cancel_url": cancel_url,
                        "client_reference_id": metadata.get("tally_account_id"),
                        "metadata": metadata, "subscription_data": {"metadata": metadata}},
                options=idempotency(idempotency_key))
        return str(session.url)

    def checkout_session_subscription(self, session_id: str) -> str | None:
        with _translated_errors():
            session = self.client.v1.checkout.sessions.retrieve(session_id).to_dict()
        return _id(session.get("subscription"))

    def create_portal_session(self, *, customer: str, return_url: str, configuration: str) -> str:
        with _translated_errors():
            session = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer, "return_url": return_url,
                        "configuration": configuration})
        return str(session.url)

    def list_portal_configurations(self, limit: int = 100) -> list[dict[str, Any]]:
        with _translated_errors():
            page = self.client.v1.billing_portal.configurations.list(params={"limit": limit})
        return [c.to_dict() for c in page.data]

    def retrieve_portal_configuration(self, configuration_id: str) -> dict[str, Any]:
        with _translated_errors():
            return self.client.v1.billing_portal.configurations.retrieve(configuration_id).to_dict()

    def create_portal_configuration(self, params: dict[str, Any]) -> dict[str, Any]:
        with _translated_errors():
            return self.client.v1.billing_portal.configurations.create(params=params).to_dict()

    def update_portal_configuration(self, configuration_id: str,
                                    params: dict[str, Any]) -> dict[str, Any]:
        with _translated_errors():
            return self.client.v1.billing_portal.configurations.update(
                configuration_id, params=params).to_dict()

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
        return _read_event(payload)


# What Tally stores of an event: ids and types as Stripe writes them, within their columns.
_EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")


def _read_event(payload: bytes) -> VerifiedEvent:
    """A signed body as an event, or a 400 `invalid_payload` (stored nothing): anything Tally
    cannot parse, however deep it nests, and any id or type it could not store."""
    try:
        event = json.loads(payload)
        data = event.get("data", {})
        obj = (data.get("object") or {}) if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise ValueError("data.object is not an object")
        event_id, event_type, object_id = event["id"], event["type"], obj.get("id")
        if not (isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id)
                and isinstance(event_type, str) and _EVENT_TYPE.fullmatch(event_type)):
            raise ValueError("not a Stripe event id and type")
        return VerifiedEvent(event_id, event_type,
                             object_id if isinstance(object_id, str) else None,
                             payload.decode("utf-8"))
    except (ValueError, KeyError, AttributeError, TypeError, RecursionError) as exc:
        raise InvalidInput("The webhook payload is not a Stripe event.",
                           code="invalid_payload") from exc


def _intent_info(intent: Any) -> PaymentIntentInfo:
    data = intent.to_dict()
    error = data.get("last_payment_error") or {}
    customer = data.get("customer")
    if isinstance(customer, dict):  # expanded
        customer = customer.get("id")
    return PaymentIntentInfo(
        id=data["id"],
        amount=int(data["amount"]),
        currency=str(data["currency"]).lower(),
        status=str(data["status"]),
        customer=customer,
        client_secret=data.get("client_secret"),
        metadata=dict(data.get("metadata") or {}),
        last_error=error.get("message"),
    )


def _id(value: Any) -> str | None:
    """An id whether Stripe gave the id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def _subscription_info(sub: Any) -> SubscriptionInfo:
    data = sub.to_dict()
    items = (data.get("items") or {}).get("data") or [{}]
    item = items[0]
    price = item.get("price") or item.get("plan") or {}
    return SubscriptionInfo(
        id=data["id"], status=str(data["status"]), customer=_id(data.get("customer")) or "",
        price_id=_id(price), metadata=dict(data.get("metadata") or {}),
        # Newer API versions keep the period on the item; older ones on the subscription.
        current_period_start=data.get("current_period_start") or item.get("current_period_start"),
        current_period_end=data.get("current_period_end") or item.get("current_period_end"),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        cancel_at=data.get("cancel_at"), latest_invoice=_id(data.get("latest_invoice")))


class _translated_errors:
    """Turn `stripe` exceptions into Tally errors with a clear message."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, stripe.StripeError):
            return False
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
        raise UpstreamError(f"Stripe refused the request: {message}") from exc


def init_app(app: Flask) -> None:
    app.extensions["tally_stripe"] = StripeGateway(
        app.config["STRIPE_SECRET_KEY"],
        app.config["STRIPE_API_BASE"],
        app.config["STRIPE_WEBHOOK_SECRET"],
    )


def gateway() -> StripeGateway:
    return current_app.extensions["tally_stripe"]
