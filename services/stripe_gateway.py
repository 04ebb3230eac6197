"""The one module that imports `stripe`.

Plain functions over a `stripe.StripeClient` that return small dataclasses and turn
Stripe's errors into Tally's. With `STRIPE_API_BASE` set (tests, demo mode) the same
calls go to localstripe; unset, they go to Stripe.
"""

from __future__ import annotations

import json
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
class VerifiedEvent:
    id: str
    type: str
    object_id: str | None
    payload: str


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
                options={"idempotency_key": idempotency_key},
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
                options={"idempotency_key": idempotency_key},
            )
        return _intent_info(intent)

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        with _translated_errors():
            intent = self.client.v1.payment_intents.retrieve(payment_intent_id)
        return _intent_info(intent)

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
        try:
            event = json.loads(payload)
            obj = event.get("data", {}).get("object", {}) or {}
            return VerifiedEvent(str(event["id"]), str(event["type"]), obj.get("id"),
                                 payload.decode("utf-8"))
        except (ValueError, KeyError, AttributeError) as exc:
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
