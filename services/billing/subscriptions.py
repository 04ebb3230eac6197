"""Paid plans through Stripe subscriptions.

Tally never trusts an event's payload or order: every path (the setup endpoint,
webhooks, Checkout's return) re-reads the subscription from Stripe and calls `sync`,
which stores what Stripe says and derives the account's tier from all of its
subscriptions. Applying the same state twice, or an older event after a newer one,
ends in the same place.

A first payment that needs authentication (3-D Secure) leaves the subscription
`incomplete` at Stripe with its invoice's PaymentIntent in `requires_action`. `start`
then answers 402 `requires_action` with the PaymentIntent's client secret; the payer
confirms it with Stripe.js `confirmCardPayment`, and `confirm_first_payment` (the page's
and the API's confirm call) re-reads the subscription: active, it is Pro (as with a
card that needs no authentication); failed or abandoned, Tally cancels the incomplete
subscription and voids its open invoice, so nothing is owed or charged later, and
nothing changed. The webhooks
(`invoice.paid`, `customer.subscription.updated`) reach the same `sync`, so whichever
path comes first finishes the upgrade, once: `apply` writes Stripe's state (never an
older `incomplete` over a later state) and the invoice is mirrored once per Stripe invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import select

from extensions import db
from models import Account, Invoice, Subscription
from models.base import utcnow
from models.billing import INVOICE_RENEWAL, INVOICE_SUBSCRIPTION
from services import idempotency
from services.billing import customers, invoices, plans
from services.billing.gateway import gateway
from services.billing.stripe_objects import (
    InvoiceInfo,
    InvoiceLineInfo,
    PaymentIntentInfo,
    SubscriptionInfo,
)
from services.errors import Conflict, InvalidInput, NotFound, PaymentFailed, TallyError
from services.notifications import notices

ACTIVE = ("active", "trialing")
LIVE = (*ACTIVE, "past_due")
ENDED = ("canceled", "incomplete_expired")  # final: Stripe never moves a subscription on from these
# The first payment is still being made: Stripe.js can finish it (3-D Secure), or it is processing.
PAYMENT_PENDING = ("requires_action", "requires_confirmation", "processing")


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def paid_plan(name: str) -> plans.Plan:
    """The plan of this name if it has a price; else a 400 naming `plan`."""
    plan = plans.get_plan(name)
    if plan is None or plan.price is None:
        raise InvalidInput(f"{name!r} is not a paid plan.", param="plan")
    return plan


def price_id(plan: plans.Plan) -> str:
    """The Stripe Price for a plan, created on first use (found again by lookup key)."""
    assert plan.price is not None
    cache: dict[str, str] = current_app.extensions.setdefault("tally_price_ids", {})
    key = plan.price.lookup_key
    if key not in cache:
        cache[key] = gateway().find_or_create_price(
            lookup_key=key, amount=plan.price.amount, currency=plan.price.currency,
            interval=plan.price.interval, product_name=f"Tally {plan.display_name}",
            idempotency_key=idempotency.stripe_key("price", key))
    return cache[key]


def plan_for_price(price: str | None) -> str | None:
    """The name of the plan whose Stripe price this is, or None."""
    for plan in plans.all_plans():
        if plan.price is not None and price_id(plan) == price:
            return plan.name
    return None


def current(account: Account) -> Subscription | None:
    """The subscription that decides the account's plan: live ones first, newest first."""
    rows = list(db.session.execute(
        select(Subscription).where(Subscription.account_id == account.id)
        .order_by(Subscription.created_at.desc())).scalars())
    live = [r for r in rows if r.status in LIVE]
    return (live or rows)[0] if rows else None


class ActionRequired(PaymentFailed):
    """402 `requires_action`: the card's bank asks the payer to authenticate the first payment.

    The answer carries what a script needs to finish: the PaymentIntent's client secret for
    Stripe.js `confirmCardPayment`, and the subscription id for the confirm call.
    """

    title, code = "Payment requires action", "requires_action"

    def __init__(self, subscription_id: str, payment: PaymentIntentInfo,
                 message: str | None = None) -> None:
        super().__init__(
            message or "Your bank asks you to confirm this payment (3-D Secure). Nothing is "
            "charged until you do: confirm payment_intent_client_secret with Stripe.js "
            "confirmCardPayment, then POST /v1/billing/setup/confirm with subscription_id.",
            extra={"requires_action": True, "subscription_id": subscription_id,
                   "payment_intent_id": payment.id,
                   "payment_intent_client_secret": payment.client_secret})


@dataclass(frozen=True)
class Subscribed:
    """What a subscription's start (or its confirmation) came to, as Stripe has it and
    Tally records it. `refusal` is the answer when it is not (yet) a paid subscription:
    402 `requires_action` while the first payment waits for the payer's bank (3-D Secure),
    or 402 `subscription_incomplete` when it failed and the subscription was ended. The
    subscription is recorded either way (what Stripe did stands); nothing is charged."""

    subscription: Subscription
    refusal: PaymentFailed | None = None


def start(account: Account, payment_method_id: str, plan_name: str = "pro") -> Subscribed:
    """Attach the card, make it the default, subscribe; the tier changes at once.

    A card declined when attached changes nothing (402). One whose first charge is
    declined ends the subscription at once (`refusal`: 402, nothing charged). One whose
    first payment needs authentication comes back with `refusal` 402 `requires_action`:
    confirm the PaymentIntent with Stripe.js, then call `confirm_first_payment`. Every
    Stripe call comes first; what Stripe answered is then written in one go.
    """
    plan = paid_plan(plan_name)
    existing = current(account)
    if existing is not None and existing.status in LIVE:
        raise Conflict(f"This account already has a {existing.plan} subscription.",
                       code="already_subscribed")
    customer = customers.stripe_id(account.customer)
    try:
        # Attaching answers with the id to use from then on: for Stripe's test ids
        # (pm_card_visa, ...) a new PaymentMethod each time.
        attached = gateway().attach_default_payment_method(customer, payment_method_id)
    except TallyError as exc:
        if exc.status >= 500:
            raise
        # Declined when attached, unknown to Stripe, or not usable: the caller's card.
        raise type(exc)(f"{_sentence(exc.message)} {_nothing_charged(account)}", code=exc.code,
                        param="payment_method_id") from exc
    info = gateway().create_subscription(
        customer=customer, price=price_id(plan),
        metadata={"tally_account_id": account.id, "tally_plan": plan.name},
        idempotency_key=idempotency.stripe_key("subscription", account.id, attached))
    return _settle(account, info, waiting=("requires_action",), stripe_customer=customer)


def confirm_first_payment(account: Account, subscription_id: str) -> Subscribed:
    """Finish an upgrade whose first payment needed authentication; safe to call again.

    Refuses subscriptions that are not the account's before any network call. Then re-reads
    the subscription from Stripe: active, it is returned (the webhook may have got there
    first; either way the state and the mirrored invoice are written once). Still waiting
    for authentication: `requires_action` again, with the client secret. Failed or
    abandoned: the incomplete subscription is cancelled at Stripe and the 402 says nothing
    was charged.
    """
    row = db.session.get(Subscription, subscription_id)
    if row is None or row.account_id != account.id:
        raise NotFound("No such subscription for this account.", code="resource_missing",
                       param="subscription_id")
    info = gateway().retrieve_subscription(subscription_id)
    if info.status in ENDED:
        return Subscribed(_recorded(account, info, None, None), PaymentFailed(
            f"This upgrade was not completed. {_nothing_charged(account)}",
            code="subscription_incomplete"))
    return _settle(account, info, waiting=PAYMENT_PENDING, again=True)


def _settle(account: Account, info: SubscriptionInfo, *, waiting: tuple[str, ...],
            again: bool = False, stripe_customer: str | None = None) -> Subscribed:
    """After Stripe created (or re-read) a subscription: fetch what its first invoice came
    to, then record it. Live: done. Its payment waiting for the payer: `action`. Else the
    first payment failed: cancel and void at Stripe, and refuse (402)."""
    invoice = gateway().retrieve_invoice(info.latest_invoice) if info.latest_invoice else None
    if info.status in LIVE:
        return Subscribed(_recorded(account, info, invoice, stripe_customer))
    payment = gateway().invoice_payment_intent(info.latest_invoice) if info.latest_invoice else None
    if payment is not None and payment.status in waiting and payment.client_secret:
        message = ("The first payment still waits for authentication. Confirm "
                   "payment_intent_client_secret with Stripe.js confirmCardPayment, then call "
                   "this again.") if again else None
        return Subscribed(_recorded(account, info, invoice, stripe_customer),
                          ActionRequired(info.id, payment, message))
    ended = _abandon(info)
    return Subscribed(_recorded(account, ended, None, stripe_customer), PaymentFailed(
        f"{_declined(payment)} {_nothing_charged(account)} Try another card.",
        code="subscription_incomplete"))


def _recorded(account: Account, info: SubscriptionInfo, invoice: InvoiceInfo | None,
              stripe_customer: str | None) -> Subscription:
    """What Stripe answered, written once every Stripe call is made."""
    if stripe_customer:
        customers.remember(account.customer, stripe_customer)
    subscription = apply(info)
    assert subscription is not None  # created by Tally, for this account
    if invoice is not None:
        mirror_invoice(invoice)
    return subscription


def _abandon(info: SubscriptionInfo) -> SubscriptionInfo:
    """End a subscription whose first payment failed, so nothing can charge it later
    (Stripe would keep it `incomplete` for 23 hours), and void its first invoice, which
    cancelling leaves `open`: the customer would owe it in the Customer Portal. Returns
    the subscription as Stripe has it now."""
    if info.status == "incomplete":
        info = gateway().cancel_subscription(info.id)
    if info.latest_invoice:
        gateway().void_open_invoice(info.latest_invoice)
    return info


def _declined(payment: PaymentIntentInfo | None) -> str:
    return _sentence((payment.last_error if payment else None)
                     or "The first payment did not go through.")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _nothing_charged(account: Account) -> str:
    return f"Nothing was charged; you are still on {plans.plan_for(account.tier).display_name}."


def sync(subscription_id: str) -> Subscription | None:
    """Re-read a subscription from Stripe and apply it."""
    return apply(gateway().retrieve_subscription(subscription_id))


def apply(info: SubscriptionInfo) -> Subscription | None:
    """Record a subscription as Stripe has it (never an older read over a later one), and derive its
    account's plan; None if it is not a Tally subscription."""
    account = _owner(info)
    if account is None:
        return None  # not a Tally subscription
    plan = info.metadata.get("tally_plan") or plan_for_price(info.price_id) or "free"
    row = db.session.get(Subscription, info.id, with_for_update=True, populate_existing=True)
    if row is None:
        row = Subscription(id=info.id, account_id=account.id, created_at=utcnow())
        db.session.add(row)
    elif _stale(row.status, info.status):
        return row  # an older read (say, `incomplete` fetched before a confirm): keep
    row.plan, row.status, row.price_id = plan, info.status, info.price_id or ""
    row.current_period_start = _ts(info.current_period_start)
    row.current_period_end = _ts(info.current_period_end)
    row.cancel_at_period_end = info.cancel_at_period_end
    row.cancel_at = _ts(info.cancel_at) or (row.current_period_end if info.cancel_at_period_end
                                            else None)
    row.updated_at = utcnow()
    db.session.flush()
    _derive_tier(account)
    return row


def _stale(stored: str, fetched: str) -> bool:
    """Stripe never moves a subscription back to `incomplete`, nor out of an ended status."""
    return stored != fetched and (fetched == "incomplete" or stored in ENDED)


def _owner(info: SubscriptionInfo) -> Account | None:
    account_id = info.metadata.get("tally_account_id")
    if account_id is None:
        row = db.session.get(Subscription, info.id)
        account_id = row.account_id if row else None
    return db.session.get(Account, account_id) if account_id else None


def _derive_tier(account: Account, now: datetime | None = None) -> None:
    """The tier follows the account's best subscription; past_due keeps it until grace ends."""
    now, before = now or utcnow(), account.tier
    rows = list(db.session.execute(
        select(Subscription).where(Subscription.account_id == account.id)).scalars())
    active = [r for r in rows if r.status in ACTIVE]
    past_due = [r for r in rows if r.status == "past_due"]
    if active:
        account.tier, account.grace_period_ends_at = active[0].plan, None
    elif past_due:
        if account.grace_period_ends_at is None:
            days = current_app.config["GRACE_PERIOD_DAYS"]
            account.grace_period_ends_at = now + timedelta(days=days)
        account.tier = past_due[0].plan if now < account.grace_period_ends_at else "free"
    else:
        account.tier, account.grace_period_ends_at = "free", None
    if account.tier != before:
        notices.plan_changed(account, before, account.tier)


def end_expired_grace(now: datetime | None = None) -> int:
    """Drop past_due accounts whose grace period has ended to Free; returns how many."""
    now = now or utcnow()
    accounts = list(db.session.execute(select(Account).where(
        Account.grace_period_ends_at.is_not(None), Account.grace_period_ends_at <= now,
        Account.tier != "free")).scalars())
    for account in accounts:
        _derive_tier(account, now)
    return len(accounts)


def set_cancel_at_period_end(account: Account, cancel: bool) -> Subscription:
    """Cancel the account's subscription at the end of its period, or resume it (Stripe first, then
    recorded)."""
    row = current(account)
    if row is None or row.status not in LIVE:
        raise NotFound("This account has no active subscription.", code="no_subscription")
    if not cancel and row.current_period_end and row.current_period_end <= utcnow():
        raise Conflict("The period has ended; subscribe again instead.", code="period_ended")
    applied = apply(gateway().set_cancel_at_period_end(row.id, cancel))
    assert applied is not None
    notices.plan_cancelled(account, applied.plan, f"{applied.cancel_at:%B %-d, %Y}"
                           if applied.cancel_at else None, cancel)
    return applied


def mirror_invoice(info: InvoiceInfo) -> Invoice | None:
    """A paid subscription invoice at Stripe (as fetched) becomes a Tally invoice (once),
    with Stripe's number beside Tally's. The subscription's first invoice is kind
    `subscription`; the invoices of later periods are `renewal`. None: not paid, or not a
    subscription Tally knows (its webhook comes first; this writes, and calls no Stripe)."""
    if info.status != "paid" or not info.subscription:
        return None
    row = db.session.get(Subscription, info.subscription)
    if row is None:
        return None
    account = db.session.get(Account, row.account_id)
    assert account is not None
    lines = [invoices.Line(line.description or _line_description(line, row.plan), line.amount,
                           line.quantity, line.unit_amount if line.unit_amount is not None
                           and line.unit_amount * line.quantity == line.amount else None)
             for line in info.lines] or [invoices.Line(_plan_line(row.plan), info.amount_paid)]
    kind = INVOICE_RENEWAL if info.billing_reason == "subscription_cycle" else INVOICE_SUBSCRIPTION
    return invoices.issue(
        account, kind=kind, source_id=info.id, currency=info.currency, lines=lines,
        paid_at=_ts(info.paid_at) or utcnow(), stripe_invoice_number=info.number,
        period=_period(info.period_start, info.period_end))


def _period(start: int | None, end: int | None) -> tuple[datetime, datetime] | None:
    began, ended = _ts(start), _ts(end)
    return (began, ended) if began and ended else None


def _plan_line(plan: str) -> str:
    return f"Tally {plans.plan_for(plan).display_name} subscription"


def _line_description(line: InvoiceLineInfo, plan: str) -> str:
    """For a line Stripe gave no description: the plan its price belongs to."""
    if not line.from_subscription:
        return "Invoice item"
    return _plan_line((plan_for_price(line.price_id) if line.price_id else None) or plan)
