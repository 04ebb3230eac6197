"""Prepaid credit top-ups by card, credited exactly once.

The confirm endpoint (after Stripe.js `confirmCardPayment`) and the
`payment_intent.succeeded` webhook both call `credit_payment_intent`, in any order,
any number of times, concurrently. It asks Stripe for the PaymentIntent (never while
holding a lock), checks it, and posts one ledger entry keyed by the PaymentIntent id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import Account, TopUp
from models.base import utcnow
from models.billing import INVOICE_RECEIPT
from models.ledger import KIND_TOPUP
from services import idempotency
from services.billing import cards, customers, invoices
from services.billing.gateway import gateway
from services.billing.stripe_objects import PaymentIntentInfo
from services.errors import Conflict, InvalidInput, NotFound, PaymentFailed
from services.ledger import entries as ledger
from services.money import format_money

SOURCE = "stripe_payment_intent"

# Called after every credit of a PaymentIntent (whichever path came first), in its
# transaction: auto-recharge finishes an attempt the customer completed on the page.
_credit_watchers: list[Callable[[str, str], None]] = []


def watch_credits(watcher: Callable[[str, str], None]) -> None:
    """Call `watcher(account_id, payment_intent_id)` whenever a PaymentIntent is credited
    (or found credited already), in that transaction."""
    if watcher not in _credit_watchers:
        _credit_watchers.append(watcher)


@dataclass(frozen=True)
class StartedTopUp:
    payment_intent_id: str
    client_secret: str
    amount: int
    currency: str
    # Stripe's: requires_payment_method (pay it with Stripe.js), requires_action (a saved
    # card that needs 3-D Secure: confirmCardPayment(client_secret)), succeeded
    status: str = "requires_payment_method"


@dataclass(frozen=True)
class Credit:
    credited: bool  # True only for the call that posted the entry
    account_id: str
    amount: int
    balance: int  # available credit after this call
    currency: str


def bounds() -> tuple[int, int]:
    """The smallest and largest top-up, in minor units (TALLY_TOPUP_MIN/MAX_AMOUNT)."""
    return current_app.config["TOPUP_MIN_AMOUNT"], current_app.config["TOPUP_MAX_AMOUNT"]


def validate_amount(amount: int, currency: str) -> int:
    """Minor units within the configured bounds."""
    low, high = bounds()
    if not low <= amount <= high:
        raise InvalidInput(
            f"Top up between {format_money(low, currency)} and {format_money(high, currency)}.",
            code="amount_out_of_range",
            param="amount",
        )
    return amount


def metadata(account: Account, purpose: str = "topup") -> dict[str, str]:
    """What every top-up PaymentIntent carries (checked again when it is credited)."""
    return {"tally_account_id": account.id, "tally_customer_id": account.customer_id,
            "purpose": purpose}


def start_top_up(account: Account, amount: int, idempotency_key: str | None = None,
                 payment_method_id: str | None = None) -> StartedTopUp:
    """Create (and record) a PaymentIntent for `amount` minor units of the account currency.

    With `payment_method_id` (one of the account's saved cards) Tally confirms it at once,
    on session: `succeeded`, or `requires_action` when the card asks for 3-D Secure; a
    decline is a 402 and records nothing. Either way the credit lands through
    `credit_payment_intent`, as for a card typed on the page."""
    amount = validate_amount(amount, account.currency)
    # A retried operation (same Idempotency-Key) makes the same Stripe call; none: a new one.
    key = idempotency.stripe_key("topup", account.id, idempotency_key or uuid.uuid4().hex)
    if payment_method_id is not None:
        card = cards.owned(account, payment_method_id)
        stripe_customer = card.customer or ""
        intent = gateway().charge_saved_card(
            amount=amount, currency=account.currency, customer=stripe_customer,
            payment_method=card.id, off_session=False, metadata=metadata(account),
            idempotency_key=key)
        if intent.status == "requires_payment_method":
            raise PaymentFailed(f"{intent.last_error or 'Your card was declined.'} Nothing was "
                                "charged.", code=intent.last_error_code or "card_declined")
    else:
        stripe_customer = customers.stripe_id(account.customer)
        intent = gateway().create_payment_intent(
            amount=amount, currency=account.currency, customer=stripe_customer,
            metadata=metadata(account), idempotency_key=key)
    customers.remember(account.customer, stripe_customer)
    record(account, intent)
    return StartedTopUp(intent.id, intent.client_secret or "", intent.amount, intent.currency,
                        intent.status)


def record(account: Account, intent: PaymentIntentInfo) -> None:
    """Remember a PaymentIntent Tally made for the account (once), so it may be credited."""
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TopUp)
    db.session.execute(insert.values(
        payment_intent_id=intent.id, account_id=account.id, amount=intent.amount,
        currency=intent.currency, status=intent.status, created_at=utcnow(),
    ).on_conflict_do_nothing())


def client_secret(account: Account, payment_intent_id: str) -> str | None:
    """The client secret of a PaymentIntent made for this account's Stripe customer (a
    top-up's or a subscription's first payment), read from Stripe: an `Idempotency-Key`
    replay answers it without the idempotency store ever keeping it. None otherwise."""
    expected = account.customer.stripe_customer_id
    if not expected or not payment_intent_id.startswith("pi_"):
        return None
    intent = gateway().retrieve_payment_intent(payment_intent_id)
    return intent.client_secret if intent.customer == expected else None


def credit_payment_intent(payment_intent_id: str, *, account_id: str | None = None) -> Credit:
    """Credit a succeeded PaymentIntent to the account Tally created it for, exactly once.

    `account_id` is the caller's account on the confirm path (another account's
    PaymentIntent is a 404); the webhook path passes None and credits its owner. An id
    Tally did not record is refused before any network call.
    """
    top_up = db.session.get(TopUp, payment_intent_id)
    if top_up is None or (account_id is not None and top_up.account_id != account_id):
        raise NotFound(f"No such payment intent: {payment_intent_id}",
                       code="resource_missing", param="payment_intent_id")
    account = db.session.get(Account, top_up.account_id)
    assert account is not None
    expected_customer = account.customer.stripe_customer_id

    intent = gateway().retrieve_payment_intent(payment_intent_id)  # no lock held here

    if intent.status != "succeeded":
        reason = f": {intent.last_error}" if intent.last_error else ""
        raise Conflict(
            f"This payment has not succeeded (status {intent.status}){reason}. Nothing was credited.",
            code="payment_intent_not_succeeded", param="payment_intent_id",
        )
    if (
        intent.amount != top_up.amount
        or intent.currency != top_up.currency
        or intent.metadata.get("tally_account_id") != account.id
        or intent.customer != expected_customer
    ):
        raise Conflict(
            "This PaymentIntent does not match the top-up Tally created for this account. "
            "Nothing was credited.",
            code="payment_intent_mismatch", param="payment_intent_id",
        )
    posting = ledger.post_entry(
        account.id, intent.amount, kind=KIND_TOPUP, source=SOURCE, source_id=intent.id,
        currency=intent.currency, description="Paid by card",
        meta={"payment_intent": intent.id},
    )
    db.session.execute(update(TopUp).where(TopUp.payment_intent_id == intent.id,
                                          TopUp.credited_at.is_(None))
                       .values(status="succeeded", credited_at=utcnow()))
    # Every call makes sure the receipt exists: a crash after the credit loses no receipt.
    invoices.issue(account, kind=INVOICE_RECEIPT, source_id=intent.id, currency=intent.currency,
                   lines=[invoices.Line("Prepaid credit top-up by card", intent.amount)],
                   paid_at=utcnow())
    for watcher in _credit_watchers:
        watcher(account.id, intent.id)
    return Credit(posting.posted, account.id, intent.amount, ledger.available_balance(account.id),
                  posting.currency)
