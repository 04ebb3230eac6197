"""Stripe-hosted pages: Checkout for a paid plan, and the Customer Portal."""

from __future__ import annotations

import uuid

from models import Account, Subscription
from services import idempotency
from services.billing import customers, plans, portal
from services.billing.gateway import gateway
from services.billing.subscriptions import paid_plan, plan_for_price, price_id, sync
from services.errors import InvalidInput


def checkout_url(account: Account, price: str, success_url: str, cancel_url: str,
                 operation_key: str | None = None) -> str:
    """A Stripe Checkout page for a paid plan (`price`: its Stripe price or its name), for
    customers who prefer Stripe's page. The same operation (its Idempotency-Key) gets the
    same page; without one, a new page each time."""
    plan_name = price if plans.get_plan(price) else plan_for_price(price)
    if plan_name is None or plans.get_plan(plan_name).price is None:  # type: ignore[union-attr]
        raise InvalidInput("priceId must be the Stripe price of a paid plan (see GET /v1/billing/plans).",
                           param="priceId")
    plan = paid_plan(plan_name)
    customer = customers.stripe_id(account.customer)
    url = gateway().create_checkout_session(
        customer=customer, price=price_id(plan),
        success_url=success_url, cancel_url=cancel_url,
        metadata={"tally_account_id": account.id, "tally_plan": plan.name},
        idempotency_key=idempotency.stripe_key("checkout", account.id,
                                               operation_key or uuid.uuid4().hex))
    customers.remember(account.customer, customer)
    return url


def complete_checkout(session_id: str) -> Subscription | None:
    """Record the subscription a finished Checkout session made, if it made one."""
    subscription_id = gateway().checkout_session_subscription(session_id)
    return sync(subscription_id) if subscription_id else None


def portal_url(account: Account, return_url: str) -> str:
    """A Stripe Customer Portal session for the account, coming back to `return_url`."""
    customer = customers.stripe_id(account.customer)
    url = gateway().create_portal_session(customer=customer, return_url=return_url,
                                          configuration=portal.default_configuration_id())
    customers.remember(account.customer, customer)
    return url
