"""The gateway to Stripe: the one package that imports `stripe` (this module makes the
calls; errors.py turns Stripe's errors into Tally's and names idempotency keys).

Plain functions over a `stripe.StripeClient` that return small dataclasses and turn
Stripe's errors into Tally's. With `STRIPE_API_BASE` set (tests, demo mode) the same
calls go to localstripe; unset, they go to Stripe.

**API version.** Every request asks for `API_VERSION`, the version the pinned `stripe`
library (pyproject.toml) was generated for, so Stripe answers in the shapes its typed
classes declare; what Tally reads of those answers is stripe_objects.py. The parameters
Tally sends are checked by mypy against the library's request types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import stripe
from flask import Flask, current_app
from stripe._base_address import BaseAddresses
from stripe.params import PaymentIntentCreateParams, SetupIntentCreateParams
from stripe.params.billing_portal import ConfigurationCreateParams, ConfigurationUpdateParams
from stripe.params.billing_portal import SessionCreateParams as SessionCreateParamsPortal
from stripe.params.checkout import SessionCreateParams

from services import uow
from services.billing.gateway.errors import idempotency, translated_errors
from services.billing.stripe_objects import (
    API_VERSION,
    InvoiceInfo,
    PaymentIntentInfo,
    PaymentMethodInfo,
    SetupIntentInfo,
    SubscriptionInfo,
    VerifiedEvent,
    id_of,
    intent_info,
    invoice_info,
    parse_event,
    payment_method_info,
    read,
    setup_intent_info,
    subscription_info,
)
from services.errors import InvalidInput, Unavailable


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
        with translated_errors():
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
        with translated_errors():
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
        return intent_info(intent.to_dict())

    def charge_saved_card(self, *, amount: int, currency: str, customer: str,
                          payment_method: str, off_session: bool, metadata: dict[str, str],
                          idempotency_key: str) -> PaymentIntentInfo:
        """Create and confirm a PaymentIntent with a saved card, on the server.

        On session (the customer is on the page) a card that needs 3-D Secure answers
        `requires_action`; off session (auto-recharge) Stripe declines it with
        `authentication_required`. A decline is not raised: the PaymentIntent comes back
        as Stripe left it (`requires_payment_method`, with `last_error_code`), so the
        caller records the attempt and its outcome."""
        params: dict[str, Any] = {
            "amount": amount, "currency": currency, "customer": customer,
            "payment_method": payment_method, "confirm": True, "metadata": metadata,
            "allowed_payment_method_types": ["card"]}
        if off_session:
            params["off_session"] = True
        uow.assert_no_writes("A Stripe call")
        try:
            intent = self.client.v1.payment_intents.create(
                params=cast(PaymentIntentCreateParams, params),
                options=idempotency(idempotency_key))
        except stripe.CardError as exc:
            body = exc.json_body if isinstance(exc.json_body, dict) else {}
            error = body.get("error")
            declined = error.get("payment_intent") if isinstance(error, dict) else None
            if not isinstance(declined, dict):
                with translated_errors():
                    raise
            return intent_info(declined)
        except stripe.StripeError:
            with translated_errors(caller_fault=True):
                raise
        return intent_info(intent.to_dict())

    def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentInfo:
        with translated_errors():
            intent = self.client.v1.payment_intents.retrieve(payment_intent_id)
        return intent_info(intent.to_dict())

    # Cards, prices, subscriptions --------------------------------------------

    def attach_default_payment_method(self, customer: str, payment_method: str) -> str:
        """Attach a card to the customer and make it the default for invoices; returns the
        id attaching answered with. For Stripe's test ids (`pm_card_visa`, ...) that is a
        new PaymentMethod: the test id itself never belongs to the customer. A payment
        method Stripe refuses is the caller's fault: `InvalidInput`, `NotFound` (no such
        payment method) or `PaymentFailed` (declined)."""
        attached_id = self.attach_card(customer, payment_method).id
        self.set_default_card(customer, attached_id)
        return attached_id

    def create_setup_intent(self, *, customer: str, metadata: dict[str, str],
                            idempotency_key: str) -> SetupIntentInfo:
        """A SetupIntent to save a card for later, off-session payments (Stripe.js
        `confirmCardSetup` finishes it, 3-D Secure included)."""
        params: SetupIntentCreateParams = {"customer": customer, "usage": "off_session",
                                           "metadata": metadata,
                                           "allowed_payment_method_types": ["card"]}
        with translated_errors():
            seti = self.client.v1.setup_intents.create(params=params,
                                                       options=idempotency(idempotency_key))
        return setup_intent_info(seti.to_dict())

    def retrieve_setup_intent_secret(self, setup_intent_id: str, customer: str) -> str | None:
        """A SetupIntent's client secret, if it was made for `customer`."""
        with translated_errors():
            data = self.client.v1.setup_intents.retrieve(setup_intent_id).to_dict()
        return setup_intent_info(data).client_secret if id_of(
            read(data, "setup_intent", "customer")) == customer else None

    def list_cards(self, customer: str) -> list[PaymentMethodInfo]:
        """The customer's saved cards."""
        with translated_errors():
            page = self.client.v1.payment_methods.list(
                params={"customer": customer, "type": "card", "limit": 100})
        return [payment_method_info(pm.to_dict()) for pm in page.data]

    def retrieve_card(self, payment_method: str) -> PaymentMethodInfo:
        with translated_errors(caller_fault=True):
            pm = self.client.v1.payment_methods.retrieve(payment_method)
        return payment_method_info(pm.to_dict())

    def attach_card(self, customer: str, payment_method: str) -> PaymentMethodInfo:
        """Attach a card to the customer (Stripe's test ids become a new PaymentMethod).
        Stripe refusing it is the caller's fault (see attach_default_payment_method)."""
        with translated_errors(caller_fault=True):
            attached = self.client.v1.payment_methods.attach(
                payment_method, params={"customer": customer})
        return payment_method_info(attached.to_dict())

    def detach_card(self, payment_method: str) -> None:
        with translated_errors():
            self.client.v1.payment_methods.detach(payment_method)

    def default_card(self, customer: str) -> str | None:
        """The customer's default card (`invoice_settings.default_payment_method`): the
        one subscriptions, top-ups and auto-recharge use unless told otherwise."""
        with translated_errors():
            data = self.client.v1.customers.retrieve(customer).to_dict()
        return id_of(read(data, "customer", "invoice_settings.default_payment_method"))

    def set_default_card(self, customer: str, payment_method: str | None) -> None:
        with translated_errors():
            self.client.v1.customers.update(customer, params={
                "invoice_settings": {"default_payment_method": payment_method or ""}})

    def find_or_create_price(self, *, lookup_key: str, amount: int, currency: str,
                             interval: str, product_name: str, idempotency_key: str) -> str:
        with translated_errors():
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
        with translated_errors():
            sub = self.client.v1.subscriptions.create(
                params={"customer": customer, "items": [{"price": price}], "metadata": metadata},
                options=idempotency(idempotency_key))
        return subscription_info(sub.to_dict())

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionInfo:
        with translated_errors():
            sub = self.client.v1.subscriptions.retrieve(subscription_id)
        return subscription_info(sub.to_dict())

    def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> SubscriptionInfo:
        with translated_errors():
            sub = self.client.v1.subscriptions.update(
                subscription_id, params={"cancel_at_period_end": cancel})
        return subscription_info(sub.to_dict())

    def cancel_subscription(self, subscription_id: str) -> SubscriptionInfo:
        """End a subscription now (used for a first payment that was never made)."""
        with translated_errors():
            sub = self.client.v1.subscriptions.cancel(subscription_id)
        return subscription_info(sub.to_dict())

    def invoice_payment_intent(self, invoice_id: str) -> PaymentIntentInfo | None:
        """The PaymentIntent of the invoice's current payment: its default invoice payment
        (`GET /v1/invoice_payments?invoice=`); invoices have no `payment_intent` since API
        version 2025-03-31."""
        with translated_errors():
            listed = self.client.v1.invoice_payments.list(params={"invoice": invoice_id,
                                                                  "limit": 10})
            payments = [p.to_dict() for p in listed.data]
            chosen = next((p for p in payments if read(p, "invoice_payment", "is_default")),
                          payments[0] if payments else None)
            intent = id_of(read(chosen, "invoice_payment", "payment.payment_intent"))
            if intent is None:
                return None
            return intent_info(self.client.v1.payment_intents.retrieve(intent).to_dict())

    def retrieve_invoice(self, invoice_id: str) -> InvoiceInfo:
        with translated_errors():
            data = self.client.v1.invoices.retrieve(invoice_id).to_dict()
        return invoice_info(data)

    def void_open_invoice(self, invoice_id: str) -> str:
        """Void the invoice if it is still `open`, so nothing is owed on it anywhere (the
        Customer Portal, Stripe's emails and retries); returns its status after."""
        with translated_errors():
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
        with translated_errors():
            session = self.client.v1.checkout.sessions.create(
                params=params, options=idempotency(idempotency_key))
        return str(read(session.to_dict(), "checkout.session", "url"))

    def checkout_session_subscription(self, session_id: str) -> str | None:
        with translated_errors():
            session = self.client.v1.checkout.sessions.retrieve(session_id).to_dict()
        return id_of(read(session, "checkout.session", "subscription"))

    def create_portal_session(self, *, customer: str, return_url: str, configuration: str) -> str:
        with translated_errors():
            session = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer, "return_url": return_url,
                        "configuration": configuration})
        return str(read(session.to_dict(), "billing_portal.session", "url"))

    def open_portal_session(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Stripe's whole billing_portal.session (`customer`, `return_url`, `configuration`,
        `locale`); a refusal is the caller's (400 `stripe_refused`)."""
        with translated_errors(caller_fault=True):
            return self.client.v1.billing_portal.sessions.create(
                params=cast(SessionCreateParamsPortal, params)).to_dict()

    def list_portal_configurations(self, limit: int = 100) -> list[dict[str, Any]]:
        with translated_errors():
            page = self.client.v1.billing_portal.configurations.list(params={"limit": limit})
        return [c.to_dict() for c in page.data]

    def retrieve_portal_configuration(self, configuration_id: str) -> dict[str, Any]:
        with translated_errors():
            return self.client.v1.billing_portal.configurations.retrieve(configuration_id).to_dict()

    def create_portal_configuration(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` in the shape of Stripe's configuration object (checked by the caller's
        declaration, field by field, as clients of Stripe's own API send them). What Stripe
        refuses of them (a product it does not have) is the caller's: 400 `stripe_refused`."""
        with translated_errors(caller_fault=True):
            return self.client.v1.billing_portal.configurations.create(
                params=cast(ConfigurationCreateParams, params)).to_dict()

    def update_portal_configuration(self, configuration_id: str,
                                    params: Mapping[str, Any]) -> dict[str, Any]:
        with translated_errors(caller_fault=True):
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


def init_app(app: Flask) -> None:
    """Give the app its gateway, configured from STRIPE_* (unset key: calls answer 503)."""
    app.extensions["tally_stripe"] = StripeGateway(
        app.config["STRIPE_SECRET_KEY"],
        app.config["STRIPE_API_BASE"],
        app.config["STRIPE_WEBHOOK_SECRET"],
    )


def gateway() -> StripeGateway:
    """The app's Stripe gateway."""
    found: StripeGateway = current_app.extensions["tally_stripe"]
    return found
