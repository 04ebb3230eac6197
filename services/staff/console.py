"""Support staff: finding customers, reading an account whole, and the actions staff take
on it (adjust the balance, change the plan, extend a grace period, resend an invoice),
each with a required reason and an audit row in the same transaction as the change.

Credit grants live in services/ledger/grants.py, impersonation in services/staff/impersonation.py,
the customer search in services/staff/search.py, the webhook inbox in
services/staff/webhook_inbox.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from extensions import db
from models import (
    Account,
    ApiKey,
    AuditEvent,
    CreditGrant,
    Customer,
    Invitation,
    Invoice,
    LedgerEntry,
    Membership,
    User,
)
from models.base import public_id, utcnow
from models.billing import Subscription
from models.ledger import KIND_ADJUSTMENT
from services import notifications
from services import usage as metering
from services.billing import plans
from services.errors import Conflict, InvalidInput, NotFound, Unavailable
from services.identity import accounts, keys, members
from services.ledger import entries as ledger
from services.ledger.audited import ADJUSTMENT_DESCRIPTION, customer_description, post_audited
from services.money import format_money
from services.notifications import notices
from services.pagination import Page, paginate
from services.staff import audit, customers, search
from services.staff.audit import Actor
from services.staff.rules import (
    PERMISSIONS,
    check_amount,
    check_note,
    check_reason,
    require_staff,
)
from services.staff.search import customer_query

MAX_GRACE_EXTENSION_DAYS = 60
LIVE_SUBSCRIPTION = ("active", "trialing", "past_due")
ADJUSTMENT_SOURCE = "staff_adjustment"


# Reading ---------------------------------------------------------------------------


def list_customers(*, q: str | None, limit: int, starting_after: str | None = None,
                   ending_before: str | None = None) -> Page[Customer]:
    """Customers matching `q`, newest first, a page at a time."""
    if q and q.strip() and not ending_before and search.indexed():
        return search.search_page(q, limit=limit, starting_after=starting_after)
    return paginate(customer_query(q), Customer, Customer.created_at, limit=limit,
                    starting_after=starting_after, ending_before=ending_before)


def get_customer(customer_id: str) -> Customer:
    """The customer with this id, or a 404 naming `id`."""
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"No such customer: {customer_id}", param="id")
    return customer


def get_account(account_id: str) -> Account:
    """The account with this id, or a 404."""
    return accounts.get_account(account_id)


def list_accounts(customer: Customer, *, limit: int, starting_after: str | None = None,
                  ending_before: str | None = None) -> Page[Account]:
    """The customer's accounts, newest first, a page at a time."""
    return paginate(select(Account).where(Account.customer_id == customer.id), Account,
                    Account.created_at, limit=limit, starting_after=starting_after,
                    ending_before=ending_before)


@dataclass(frozen=True)
class AccountOverview:
    account: Account
    plan: plans.Plan
    entries: list[LedgerEntry]
    usage: metering.UsageSummary
    invoices: list[Invoice]
    keys: list[ApiKey]
    grants: list[CreditGrant]
    subscription: Subscription | None


@dataclass(frozen=True)
class CustomerOverview:
    customer: Customer
    users: list[User]
    members: list[Membership]  # who logs in, with their role (users: the same people)
    invitations: list[Invitation]  # pending
    accounts: list[AccountOverview]
    audit: list[AuditEvent]
    last_viewed: datetime | None


def overview(customer_id: str) -> CustomerOverview:
    """Everything a staff member needs on one page: accounts, money, usage, keys, audit."""
    customer = get_customer(customer_id)
    people = members.list_members(customer.id)
    return CustomerOverview(
        customer=customer,
        users=[m.user for m in people],
        members=people,
        invitations=members.pending_invitations(customer.id),
        accounts=[_account_overview(a) for a in customer.accounts],
        audit=audit.for_customer(customer.id, limit=20),
        last_viewed=audit.last_staff_view(customer.id),
    )


def _account_overview(account: Account) -> AccountOverview:
    return AccountOverview(
        account=account,
        plan=plans.plan_for(account.tier),
        entries=ledger.recent_entries(account.id, limit=10),
        usage=metering.summary(account),
        invoices=list(db.session.execute(
            select(Invoice).where(Invoice.account_id == account.id)
            .order_by(Invoice.issued_at.desc()).limit(10)).scalars()),
        keys=keys.list_keys(account.id),
        grants=list(db.session.execute(
            select(CreditGrant).where(CreditGrant.account_id == account.id)
            .order_by(CreditGrant.created_at.desc()).limit(10)).scalars()),
        subscription=live_subscription(account),
    )


def live_subscription(account: Account) -> Subscription | None:
    """The account's newest subscription that still decides its plan (active, trialing or past due)."""
    return db.session.execute(
        select(Subscription).where(Subscription.account_id == account.id,
                                   Subscription.status.in_(LIVE_SUBSCRIPTION))
        .order_by(Subscription.created_at.desc()).limit(1)).scalar_one_or_none()


def record_view(actor: Actor, customer: Customer) -> None:
    """A staff member opened this customer's record (shown on the customer's dashboard)."""
    audit.record(actor, "customer.view", customer_id=customer.id)


# Money -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    id: str
    amount: int
    balance: int
    currency: str


def adjust_balance(actor: Actor, account_id: str, amount: int, reason: str | None,
                   *, note: str | None = None, adjustment_id: str | None = None) -> Adjustment:
    """A signed `adjustment` entry. A debit may not take the available credit (balance
    less rated usage not yet posted, which is owed too) below zero."""
    require_staff(actor.staff)
    amount = check_amount(amount, positive=False)  # the form's order: amount, then reason
    reason = check_reason(reason)
    note = check_note(note)
    account = get_account(account_id)
    if amount < 0:
        _refuse_overdraw(account, amount)
    source_id = adjustment_id or public_id("adj")
    posting = post_audited(
        actor, account, amount, kind=KIND_ADJUSTMENT, source=ADJUSTMENT_SOURCE,
        source_id=source_id, description=customer_description(ADJUSTMENT_DESCRIPTION, note),
        action="balance.adjust", reason=reason, allow_negative=False, meta={"note": note})
    if not posting.posted:
        raise Conflict("This adjustment was already posted.", code="duplicate_adjustment")
    return Adjustment(source_id, amount, posting.balance, posting.currency)


def _refuse_overdraw(account: Account, amount: int) -> None:
    """Refuse a debit larger than the available credit, saying how much can be taken.

    Locks the account row first (kept until the commit), so neither the balance nor the
    pending usage moves between this check and the posting.
    """
    locked = ledger.lock_account(account.id)
    available, pending = locked.available_balance, locked.pending_usage
    if available + amount < 0:
        most = format_money(max(available, 0), account.currency)
        owed = (f" ({format_money(int(pending), account.currency)} of usage is not yet posted)"
                if pending else "")
        raise Conflict(f"Not enough credit: at most {most} can be taken{owed}.",
                       code="insufficient_credit", param="amount")


def change_plan(actor: Actor, account_id: str, plan: str | None, reason: str | None) -> Account:
    """Set the account's plan directly (a comp or a correction). Refused while the account
    pays for a plan through a live Stripe subscription, which would set it back."""
    require_staff(actor.staff)
    reason = check_reason(reason)
    tier = customers.plan_name(plan)
    account = ledger.lock_account(account_id)
    if account.tier == tier:
        raise Conflict(f"The account is already on {tier.capitalize()}.", code="same_plan",
                       param="plan")
    sub = live_subscription(account)
    if sub is not None:
        raise Conflict(
            f"This account pays for {sub.plan.capitalize()} through a Stripe subscription "
            f"({sub.status}); the subscription decides its plan. Change or cancel the "
            "subscription instead.", code="subscription_manages_plan", param="plan")
    before = {"plan": account.tier}
    account.tier = tier
    audit.record(actor, "plan.change", customer_id=account.customer_id, account_id=account.id,
                 reason=reason, before=before, after={"plan": tier})
    if tier != before["plan"]:
        notices.plan_changed(account, before["plan"], tier)
    return account


def extend_grace(actor: Actor, account_id: str, days: object, reason: str | None) -> Account:
    """Push back the end of a past-due account's grace period by `days`."""
    require_staff(actor.staff)
    reason = check_reason(reason)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_GRACE_EXTENSION_DAYS:
        raise InvalidInput(f"days must be a whole number from 1 to {MAX_GRACE_EXTENSION_DAYS}.",
                           param="days")
    account = ledger.lock_account(account_id)
    if account.grace_period_ends_at is None:
        raise Conflict("This account is not in a grace period (no failed renewal).",
                       code="no_grace_period", param="days")
    now = utcnow()
    before = {"grace_period_ends_at": account.grace_period_ends_at, "plan": account.tier}
    account.grace_period_ends_at = max(account.grace_period_ends_at, now) + timedelta(days=days)
    past_due = db.session.execute(
        select(Subscription).where(Subscription.account_id == account.id,
                                   Subscription.status == "past_due")
        .order_by(Subscription.created_at.desc()).limit(1)).scalar_one_or_none()
    if past_due is not None:
        account.tier = past_due.plan  # the plan comes back if the grace had already run out
    audit.record(actor, "grace.extend", customer_id=account.customer_id, account_id=account.id,
                 reason=reason, before=before,
                 after={"grace_period_ends_at": account.grace_period_ends_at, "plan": account.tier},
                 meta={"days": days})
    return account


def resend_invoice(actor: Actor, account_id: str, invoice_id: str, reason: str | None) -> str:
    """Email the invoice, its PDF attached, to the customer's primary email; audited.

    Returns the address it goes to. The email is queued with the audit row and sent after
    the commit (services/notifications). Without email delivery set up (SMTP_URL) it
    refuses, saying so, and records nothing.
    """
    require_staff(actor.staff)
    reason = check_reason(reason)
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.account_id != account_id:
        raise NotFound(f"No such invoice: {invoice_id}", param="invoice_id")
    if not notifications.email_configured():
        raise Unavailable(
            f"Invoice {invoice.number} was not sent: Tally has no email delivery set up yet "
            "(SMTP_URL). The customer can download it from their Invoices page.",
            code="email_not_configured")
    account = get_account(account_id)
    to = account.customer.primary_email
    title = {"receipt": "Receipt", "usage_statement": "Usage statement"}.get(invoice.kind, "Invoice")
    notifications.queue_email(
        to, f"Your {title.lower()} {invoice.number} from Tally",
        f"Hello,\n\nAs requested, here is your {title.lower()} {invoice.number} "
        f"({format_money(invoice.total, invoice.currency)}), attached as a PDF. You can also "
        "download it any time from the Invoices page of your billing portal.\n\n— Tally billing\n",
        customer_id=account.customer_id, invoice_pdf=invoice.id)
    audit.record(actor, "invoice.resend", customer_id=account.customer_id,
                 account_id=account.id, reason=reason,
                 meta={"invoice_id": invoice.id, "number": invoice.number, "to": to})
    return to


# Staff users -------------------------------------------------------------------------


def set_permission(actor: Actor, email: str, permission: str, *, granted: bool) -> User:
    """Give or take a staff permission (audited)."""
    if permission not in PERMISSIONS:
        raise InvalidInput(f"Unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}.",
                           param="permission")
    user = db.session.execute(
        select(User).where(User.email == accounts.normalise_email(email))).scalar_one_or_none()
    if user is None or not user.is_staff:
        raise NotFound(f"No staff user with email {email}.", param="email")
    before = sorted(user.permissions or [])
    after = sorted(set(before) | {permission}) if granted else [p for p in before if p != permission]
    user.permissions = after  # a new list, so the JSON column is written
    audit.record(actor, "staff.permission", reason=f"{'grant' if granted else 'revoke'} {permission}",
                 before={"email": user.email, "permissions": before},
                 after={"email": user.email, "permissions": after})
    return user
