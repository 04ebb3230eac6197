"""Saved cards: added with a SetupIntent (Stripe.js `confirmCardSetup`, 3-D Secure included),
listed, made the default, removed.

Stripe keeps the cards and the default (`invoice_settings.default_payment_method` of the
customer): the same default pays the subscription, one-click top-ups and auto-recharge.
Tally stores nothing of a card. Every call that names a card first checks that it belongs
to the account's Stripe customer; anyone else's card is a 404, as a card that does not
exist is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from models import Account
from services import idempotency
from services.billing import customers
from services.billing.gateway import gateway
from services.billing.stripe_objects import PaymentMethodInfo
from services.errors import NotFound


@dataclass(frozen=True)
class Card:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    default: bool


@dataclass(frozen=True)
class StartedSetup:
    setup_intent_id: str
    client_secret: str


def _card(info: PaymentMethodInfo, default: str | None) -> Card:
    return Card(info.id, info.brand, info.last4, info.exp_month, info.exp_year, info.id == default)


def start_setup(account: Account, idempotency_key: str | None = None) -> StartedSetup:
    """A SetupIntent for the account's Stripe customer (created at Stripe on first use)."""
    stripe_customer = customers.stripe_id(account.customer)
    seti = gateway().create_setup_intent(
        customer=stripe_customer, metadata={"tally_account_id": account.id},
        idempotency_key=idempotency.stripe_key("setup", account.id,
                                               idempotency_key or uuid.uuid4().hex))
    customers.remember(account.customer, stripe_customer)
    return StartedSetup(seti.id, seti.client_secret)


def setup_client_secret(account: Account, setup_intent_id: str) -> str | None:
    """The client secret of one of the account's SetupIntents (for an Idempotency-Key replay)."""
    if not account.customer.stripe_customer_id or not setup_intent_id.startswith("seti_"):
        return None
    return gateway().retrieve_setup_intent_secret(setup_intent_id,
                                                  account.customer.stripe_customer_id)


def list_cards(account: Account) -> list[Card]:
    """The account's saved cards, the default first."""
    stripe_customer = account.customer.stripe_customer_id
    if not stripe_customer:
        return []
    found = gateway().list_cards(stripe_customer)
    default = gateway().default_card(stripe_customer) if found else None
    return sorted((_card(info, default) for info in found), key=lambda c: not c.default)


def default_card(account: Account) -> str | None:
    """The id of the account's default card, if it has one."""
    stripe_customer = account.customer.stripe_customer_id
    return gateway().default_card(stripe_customer) if stripe_customer else None


def owned(account: Account, payment_method_id: str) -> PaymentMethodInfo:
    """The account's card `payment_method_id`; a 404 for anyone else's or none."""
    missing = NotFound(f"No such payment method: {payment_method_id}", code="resource_missing",
                       param="payment_method_id")
    stripe_customer = account.customer.stripe_customer_id
    if not stripe_customer or not payment_method_id.startswith("pm_"):
        raise missing
    try:
        info = gateway().retrieve_card(payment_method_id)
    except NotFound:
        raise missing from None
    if info.customer != stripe_customer:
        raise missing
    return info


def attach(account: Account, payment_method_id: str) -> Card:
    """Save a card confirmed by Stripe.js (or one of Stripe's test ids, `pm_card_visa`) to
    the account. It becomes the default when the account has none."""
    stripe_customer = customers.stripe_id(account.customer)
    try:
        info = gateway().retrieve_card(payment_method_id)
    except NotFound:
        raise NotFound(f"No such payment method: {payment_method_id}", code="resource_missing",
                       param="payment_method_id") from None
    if info.customer not in (None, stripe_customer):
        raise NotFound(f"No such payment method: {payment_method_id}", code="resource_missing",
                       param="payment_method_id")
    if info.customer is None:
        info = gateway().attach_card(stripe_customer, payment_method_id)
    default = gateway().default_card(stripe_customer)
    if default is None:
        gateway().set_default_card(stripe_customer, info.id)
        default = info.id
    customers.remember(account.customer, stripe_customer)
    return _card(info, default)


def make_default(account: Account, payment_method_id: str) -> Card:
    """Make one of the account's cards the default (subscription, top-ups, auto-recharge)."""
    info = owned(account, payment_method_id)
    gateway().set_default_card(info.customer or "", info.id)
    return _card(info, info.id)


def remove(account: Account, payment_method_id: str) -> Card:
    """Remove one of the account's cards (Stripe detaches it; it can never be charged again)."""
    info = owned(account, payment_method_id)
    default = gateway().default_card(info.customer or "")
    gateway().detach_card(info.id)
    return _card(info, default)
