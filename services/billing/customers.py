"""A Tally customer's Stripe customer: created at Stripe on first use, remembered after.

Two steps, because a Stripe call never runs in a transaction that has written
(services/uow.py): `stripe_id` makes the network call and writes nothing; once the
operation's Stripe calls are done, `remember` records the id with the rest of its writes.
"""

from __future__ import annotations

from sqlalchemy import update

from extensions import db
from models import Customer
from services import idempotency
from services.billing.gateway import gateway


def stripe_id(customer: Customer) -> str:
    """The customer's Stripe id, created at Stripe if it has none (idempotently: a retry
    or a concurrent first use gets the same Stripe customer)."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    return gateway().create_customer(
        name=customer.name,
        email=customer.primary_email,
        metadata={"tally_customer_id": customer.id},
        idempotency_key=idempotency.stripe_key("customer", customer.id),
    )


def remember(customer: Customer, stripe_customer_id: str) -> None:
    """Record the Stripe id `stripe_id` returned, unless one is recorded already."""
    if customer.stripe_customer_id:
        return
    db.session.execute(
        update(Customer)
        .where(Customer.id == customer.id, Customer.stripe_customer_id.is_(None))
        .values(stripe_customer_id=stripe_customer_id)
        .execution_options(synchronize_session=False))
    customer.stripe_customer_id = stripe_customer_id
