"""Auto-recharge: when available credit falls below the account's threshold, charge the
saved card off session and credit it through the same exactly-once path as every top-up.

**Trigger.** `entries.watch_balance` calls `_on_balance` in the very transaction that
moved credit (the gate, ingestion's rated usage, period close, a grant expiring, a staff
adjustment). Below the threshold it claims an attempt with one conditional UPDATE
(`status` idle or requires_action -> charging, `attempt_seq + 1`) and queues an outbox
message in the same transaction. The UPDATE's row lock decides every race on every worker:
of 50 gate calls crossing the threshold at once exactly one claims; the others see
`charging` and do nothing. A rollback claims nothing and queues nothing.

**The charge** runs after the commit, from the outbox (interfaces/jobs.py, `run_attempt`
in three steps, each its own unit of work): `prepare` fixes the attempt's amount and card
in a row; the Stripe call then runs holding no lock, with an idempotency key derived from
the attempt (`tally-recharge-<account>-<seq>`), so a redelivered message (a worker killed
mid-charge) makes the same charge, never a second; `finish` records the PaymentIntent,
credits it with `topups.credit_payment_intent` (the webhook may come first: one entry
either way) and sets the state.

**Failure**: a decline or `authentication_required` leaves the balance as it was, counts a
consecutive failure, emails the customer and retries after `BACKOFF`; the third in a row
turns auto-recharge off. `authentication_required` keeps the PaymentIntent so the customer
can complete it on the page (3-D Secure); its credit, by any path, ends the failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from extensions import db
from models import Account
from models.base import utcnow
from models.recharge import (
    CHARGING,
    DECLINED,
    DISABLED,
    FIXED,
    IDLE,
    NEEDS_AUTHENTICATION,
    NO_CARD,
    NOT_NEEDED,
    OVER_MONTHLY_LIMIT,
    PENDING,
    REQUIRES_ACTION,
    SUCCEEDED,
    TARGET,
    AutoRecharge,
    RechargeAttempt,
)
from services import idempotency, uow
from services.billing import cards
from services.billing.gateway import gateway
from services.billing.stripe_objects import PaymentIntentInfo
from services.errors import InvalidInput
from services.ledger import entries as ledger
from services.ledger import topups
from services.money import format_money
from services.notifications import notices, outbox
from services.usage import periods

ATTEMPT = "auto_recharge"  # outbox kind: make the charge of a claimed attempt
RETRY = "auto_recharge_retry"  # outbox kind: look again after a failure's backoff
MAX_FAILURES = 3
MAX_AMOUNT = 10**12  # the largest threshold, amount, target or limit (minor units)
BACKOFF = (timedelta(minutes=30), timedelta(hours=2))  # after the 1st and 2nd failure


@dataclass(frozen=True)
class Settings:
    enabled: bool
    threshold: int
    method: str
    amount: int | None
    target: int | None
    payment_method_id: str | None
    monthly_limit: int | None


@dataclass(frozen=True)
class Plan:
    """A claimed attempt, fixed before its charge."""

    account_id: str
    seq: int
    amount: int
    currency: str
    customer: str
    payment_method_id: str


def settings_of(account_id: str) -> AutoRecharge | None:
    """The account's auto-recharge row (None: never set up)."""
    return db.session.execute(select(AutoRecharge).where(AutoRecharge.account_id == account_id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def last_attempt(account_id: str) -> RechargeAttempt | None:
    """The account's latest finished or pending attempt."""
    return db.session.execute(select(RechargeAttempt).where(RechargeAttempt.account_id == account_id)
                              .order_by(RechargeAttempt.seq.desc()).limit(1)).scalar_one_or_none()


def attempts(account_id: str, limit: int = 20) -> list[RechargeAttempt]:
    """The account's attempts, newest first (activity, staff)."""
    return list(db.session.execute(select(RechargeAttempt).where(
        RechargeAttempt.account_id == account_id).order_by(RechargeAttempt.seq.desc())
        .limit(limit)).scalars())


# Settings --------------------------------------------------------------------------------


def _check_amounts(account: Account, wanted: Settings) -> None:
    low, _high = topups.bounds()
    field, value = ("amount", wanted.amount) if wanted.method == FIXED else ("target", wanted.target)
    if value is None:
        raise InvalidInput(f"{field} is required with method {wanted.method}.", param=field)
    if wanted.method == FIXED:
        topups.validate_amount(value, account.currency)
    elif value - wanted.threshold < low:
        raise InvalidInput(f"target must be at least {format_money(low, account.currency)} above "
                           "the threshold.", code="amount_out_of_range", param="target")
    if wanted.monthly_limit is not None and wanted.monthly_limit < low:
        raise InvalidInput(f"monthly_limit must be at least {format_money(low, account.currency)}, "
                           "one recharge.", code="amount_out_of_range", param="monthly_limit")


def _usable_card(account: Account, payment_method_id: str | None) -> str | None:
    """The card auto-recharge would charge (a Stripe call; before any write)."""
    if payment_method_id is not None:
        try:
            return cards.owned(account, payment_method_id).id
        except Exception as exc:
            raise InvalidInput("payment_method_id is not one of your saved cards.",
                               code="payment_method_unusable", param="payment_method_id") from exc
    return cards.default_card(account)


def configure(account: Account, wanted: Settings) -> AutoRecharge:
    """Save the account's settings. Enabling needs a usable card (the one named, or the
    default): otherwise a 400 naming `payment_method_id`. Turning it on (again) starts
    afresh; with credit below the threshold already, the first recharge is claimed now."""
    for name in ("threshold", "amount", "target", "monthly_limit"):
        value = getattr(wanted, name)
        if value is not None and not 0 <= value <= MAX_AMOUNT:
            raise InvalidInput(f"{name} must be zero or more, at most {MAX_AMOUNT} (minor units).",
                               code="amount_out_of_range", param=name)
    if wanted.enabled:
        _check_amounts(account, wanted)
        if _usable_card(account, wanted.payment_method_id) is None:
            raise InvalidInput("Save a card first: auto-recharge charges your default card, or "
                               "the one you name.", code="no_usable_card", param="payment_method_id")
    row = uow.lock(AutoRecharge, account.id) or _new_row(account.id)
    was_on = row.enabled
    row.enabled, row.threshold, row.method = wanted.enabled, wanted.threshold, wanted.method
    row.amount, row.target = wanted.amount, wanted.target
    row.payment_method_id, row.monthly_limit = wanted.payment_method_id, wanted.monthly_limit
    row.updated_at = utcnow()
    if not wanted.enabled:
        row.status = DISABLED
    elif not was_on or row.status == DISABLED:
        row.status, row.consecutive_failures, row.retry_at = IDLE, 0, None
        row.pending_payment_intent_id = None
    db.session.flush()
    _on_balance(account.id, -1)
    return row


def _new_row(account_id: str) -> AutoRecharge:
    row = AutoRecharge(account_id=account_id, enabled=False, threshold=0, method=FIXED,
                       status=DISABLED, consecutive_failures=0, attempt_seq=0)
    db.session.add(row)
    return row


# The trigger -----------------------------------------------------------------------------


def _on_balance(account_id: str, change: int, now: datetime | None = None) -> None:
    """In the transaction that moved credit: below the threshold, claim one attempt."""
    if change >= 0:
        return
    row = db.session.execute(select(AutoRecharge.enabled, AutoRecharge.status,
                                    AutoRecharge.threshold)
                             .where(AutoRecharge.account_id == account_id)).first()
    if row is None or not row.enabled or row.status not in (IDLE, REQUIRES_ACTION):
        return
    if ledger.available_balance(account_id) >= row.threshold:
        return
    claim(account_id, now or utcnow())


def claim(account_id: str, now: datetime) -> int | None:
    """Claim the next attempt (one conditional UPDATE: at most one in flight per account,
    on every worker) and queue its charge; its number, or None if it was not free."""
    seq = db.session.execute(
        update(AutoRecharge)
        .where(AutoRecharge.account_id == account_id, AutoRecharge.enabled.is_(True),
               AutoRecharge.status.in_((IDLE, REQUIRES_ACTION)),
               or_(AutoRecharge.retry_at.is_(None), AutoRecharge.retry_at <= now))
        .values(status=CHARGING, attempt_seq=AutoRecharge.attempt_seq + 1, updated_at=now)
        .returning(AutoRecharge.attempt_seq)).scalar_one_or_none()
    if seq is None:
        return None
    account = db.session.get(Account, account_id)
    outbox.enqueue(ATTEMPT, {"account_id": account_id, "seq": int(seq)},
                   dedupe_key=f"recharge:{account_id}:{seq}",
                   customer_id=account.customer_id if account else None)
    return int(seq)


def look_again(account_id: str, at: datetime) -> int | None:
    """After a failure's backoff: claim again if credit is still below the threshold."""
    row = settings_of(account_id)
    if row is None or not row.enabled or row.status not in (IDLE, REQUIRES_ACTION):
        return None
    if ledger.available_balance(account_id) >= row.threshold:
        return None
    return claim(account_id, max(at, utcnow()))


# The attempt -----------------------------------------------------------------------------


def card_for(account_id: str, seq: int) -> tuple[str, str | None] | None:
    """Step 0 (reads and Stripe only): the Stripe customer and the card an attempt would
    charge; None when the attempt is no longer in flight."""
    row = settings_of(account_id)
    account = db.session.get(Account, account_id)
    if row is None or account is None or row.status != CHARGING or row.attempt_seq != seq:
        return None
    customer = account.customer.stripe_customer_id or ""
    chosen = row.payment_method_id or (gateway().default_card(customer) if customer else None)
    return customer, chosen


def prepare(account_id: str, seq: int, customer: str, card: str | None,
            now: datetime | None = None) -> Plan | None:
    """Step 1: fix the attempt's amount and card in a row (a redelivery reuses them, so its
    Stripe call is the same). None when there is nothing to charge (finished here)."""
    now = now or utcnow()
    row = uow.lock(AutoRecharge, account_id)
    account = db.session.get(Account, account_id)
    if row is None or account is None or row.status != CHARGING or row.attempt_seq != seq:
        return None
    attempt = db.session.execute(select(RechargeAttempt).where(
        RechargeAttempt.account_id == account_id, RechargeAttempt.seq == seq)).scalar_one_or_none()
    if attempt is None:
        amount = _amount(row, account)
        attempt = RechargeAttempt(account_id=account_id, seq=seq, amount=amount,
                                  currency=account.currency, payment_method_id=card,
                                  outcome=PENDING, created_at=now)
        db.session.add(attempt)
        db.session.flush()
        refusal = _refusal(row, account, attempt, now)
        if refusal is not None:
            _settle(row, account, attempt, refusal, now)
            return None
    if attempt.payment_method_id is None:
        _settle(row, account, attempt, NO_CARD, now)
        return None
    return Plan(account_id, seq, attempt.amount, attempt.currency, customer,
                attempt.payment_method_id)


def _amount(row: AutoRecharge, account: Account) -> int:
    """Fixed: the amount; target: what brings available credit up to it (0: nothing to
    do). Within the top-up bounds."""
    low, high = topups.bounds()
    wanted = (row.target or 0) - account.available_balance if row.method == TARGET \
        else row.amount or 0
    return 0 if wanted <= 0 else max(low, min(high, wanted))


def _refusal(row: AutoRecharge, account: Account, attempt: RechargeAttempt,
             now: datetime) -> str | None:
    if attempt.amount <= 0:
        return NOT_NEEDED
    if row.monthly_limit is not None:
        period = periods.month_of(now, account.time_zone)
        spent = int(db.session.execute(select(func.coalesce(func.sum(RechargeAttempt.amount), 0))
                                       .where(RechargeAttempt.account_id == account.id,
                                              RechargeAttempt.outcome == SUCCEEDED,
                                              RechargeAttempt.created_at >= period.start,
                                              RechargeAttempt.created_at < period.end))
                    .scalar_one())
        if spent + attempt.amount > row.monthly_limit:
            return OVER_MONTHLY_LIMIT
    return None


def charge(plan: Plan) -> PaymentIntentInfo:
    """Step 2, holding no lock: the off-session charge, keyed by the attempt."""
    account = db.session.get(Account, plan.account_id)
    assert account is not None
    return gateway().charge_saved_card(
        amount=plan.amount, currency=plan.currency, customer=plan.customer,
        payment_method=plan.payment_method_id, off_session=True,
        metadata=topups.metadata(account, "auto_recharge"),
        idempotency_key=idempotency.stripe_key("recharge", plan.account_id, str(plan.seq)))


def record_charge(plan: Plan, intent: PaymentIntentInfo) -> None:
    """Step 3a: remember the PaymentIntent (so it can be credited, by any path)."""
    account = db.session.get(Account, plan.account_id)
    assert account is not None
    topups.record(account, intent)
    db.session.execute(update(RechargeAttempt).where(
        RechargeAttempt.account_id == plan.account_id, RechargeAttempt.seq == plan.seq)
        .values(payment_intent_id=intent.id))


def finish(plan: Plan, intent: PaymentIntentInfo, now: datetime | None = None) -> None:
    """Step 3b: credit a charge that succeeded (exactly once, as every top-up), or record
    the failure; then the state and the customer's email."""
    now = now or utcnow()
    if intent.status == "succeeded":
        topups.credit_payment_intent(intent.id)  # calls _on_credit, which settles it
        return
    row = uow.lock(AutoRecharge, plan.account_id)
    account = db.session.get(Account, plan.account_id)
    attempt = _attempt(plan.account_id, plan.seq)
    if row is None or account is None or attempt is None or attempt.outcome != PENDING:
        return
    outcome = NEEDS_AUTHENTICATION if intent.last_error_code == "authentication_required" \
        else DECLINED
    attempt.error = intent.last_error
    _settle(row, account, attempt, outcome, now, payment_intent_id=intent.id)


def _attempt(account_id: str, seq: int) -> RechargeAttempt | None:
    return db.session.execute(select(RechargeAttempt).where(
        RechargeAttempt.account_id == account_id, RechargeAttempt.seq == seq)
        .execution_options(populate_existing=True)).scalar_one_or_none()


def _on_credit(account_id: str, payment_intent_id: str) -> None:
    """A PaymentIntent was credited: if it is an attempt's (off session, or completed by the
    customer on the page), the attempt succeeded."""
    attempt = db.session.execute(select(RechargeAttempt).where(
        RechargeAttempt.account_id == account_id,
        RechargeAttempt.payment_intent_id == payment_intent_id)).scalar_one_or_none()
    if attempt is None or attempt.outcome == SUCCEEDED:
        return
    row = uow.lock(AutoRecharge, account_id)
    account = db.session.get(Account, account_id)
    if row is None or account is None:
        return
    _settle(row, account, attempt, SUCCEEDED, utcnow(), payment_intent_id=payment_intent_id)


def _settle(row: AutoRecharge, account: Account, attempt: RechargeAttempt, outcome: str,
            now: datetime, payment_intent_id: str | None = None) -> None:
    """An attempt's outcome, the state it leaves, and the email that says so."""
    attempt.outcome, attempt.finished_at = outcome, now
    if payment_intent_id:
        attempt.payment_intent_id = payment_intent_id
    current = row.attempt_seq == attempt.seq
    if outcome == SUCCEEDED:
        if current or row.pending_payment_intent_id == payment_intent_id:
            row.consecutive_failures, row.retry_at, row.pending_payment_intent_id = 0, None, None
            row.status = IDLE if row.enabled else DISABLED
    elif outcome in (NOT_NEEDED, OVER_MONTHLY_LIMIT):
        row.status = IDLE if row.enabled else DISABLED
        if outcome == OVER_MONTHLY_LIMIT:
            row.retry_at = periods.month_of(now, account.time_zone).end
    else:
        _failed(row, attempt, outcome, now)
    row.updated_at = now
    notices.recharge_outcome(account, attempt.outcome, attempt.amount, attempt.seq,
                             turned_off=row.status == DISABLED and outcome not in (
                                 SUCCEEDED, NOT_NEEDED, OVER_MONTHLY_LIMIT),
                             error=attempt.error)


def _failed(row: AutoRecharge, attempt: RechargeAttempt, outcome: str, now: datetime) -> None:
    row.consecutive_failures += 1
    row.pending_payment_intent_id = attempt.payment_intent_id \
        if outcome == NEEDS_AUTHENTICATION else None
    if row.consecutive_failures >= MAX_FAILURES:
        row.enabled, row.status, row.retry_at = False, DISABLED, None
        return
    row.status = REQUIRES_ACTION if outcome == NEEDS_AUTHENTICATION else IDLE
    delay = BACKOFF[min(row.consecutive_failures, len(BACKOFF)) - 1]
    row.retry_at = now + delay
    outbox.enqueue(RETRY, {"account_id": row.account_id, "at": row.retry_at.isoformat()},
                   dedupe_key=f"recharge-retry:{row.account_id}:{attempt.seq}", delay=delay)


ledger.watch_balance(_on_balance)
topups.watch_credits(_on_credit)
