"""Credit grants: free credit that staff give an account, with a reason, optionally
starting later (`effective_from`) and expiring (`expires_at`).

A grant that is already effective is posted at once, with its audit row, in one
transaction. A later one is posted by `post_due`, and what is left of an expired grant
is removed by `expire_due`; `flask --app app credit-grants` runs both (run it from cron).

Consumption order: every debit (rated usage, staff debits; not expiries) is drawn from
the grants in effect before paid credit, the grant that expires soonest first (grants
with no expiry last). Rated usage counts as spent as it accrues, before it is posted.
What is left of a grant when it expires leaves the balance as one `expiry` entry, never
more than the credit still available, so an expiry never takes credit the customer paid
for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from extensions import db
from models import Account, CreditGrant, LedgerEntry, UsageCharge
from models.base import public_id, utcnow
from models.ledger import KIND_EXPIRY, KIND_GRANT, KIND_USAGE
from services.errors import InvalidInput
from services.identity.accounts import get_account
from services.ledger import entries as ledger
from services.ledger.audited import GRANT_DESCRIPTION, customer_description, post_audited
from services.pagination import Page, paginate
from services.staff import audit
from services.staff.audit import Actor
from services.staff.rules import check_amount, check_note, check_reason, require_staff
from services.usage import periods

SOURCE = "credit_grant"


@dataclass(frozen=True)
class GrantResult:
    grant: CreditGrant
    balance: int


def grant(actor: Actor, account_id: str, amount: int, reason: str | None, *,
          note: str | None = None, effective_from: datetime | None = None,
          expires_at: datetime | None = None, now: datetime | None = None) -> GrantResult:
    """Give an account credit: posted now (with its audit row), or scheduled for
    `effective_from`. A retried request is answered once by its Idempotency-Key
    (services/idempotency.py), never granted twice. `reason` is for the audit log; the
    customer's ledger shows "Credit from Tally" and `note`, when staff give one."""
    require_staff(actor.staff)
    amount = check_amount(amount, positive=True)  # the order the request documents: amount, reason
    reason = check_reason(reason)
    note = check_note(note)
    account = get_account(account_id)
    now = now or utcnow()
    starts = effective_from or now
    if expires_at is not None and expires_at <= max(starts, now):
        raise InvalidInput("expires_at must be later than effective_from and than now.",
                           param="expires_at")
    row = CreditGrant(id=public_id("grant"), account_id=account.id, amount=amount,
                      currency=account.currency, reason=reason, note=note, effective_from=starts,
                      expires_at=expires_at, granted_by_id=actor.staff.id if actor.staff else None,
                      created_at=now)
    db.session.add(row)
    meta = {"grant_id": row.id, "effective_from": starts, "expires_at": expires_at, "note": note}
    if starts > now:
        audit.record(actor, "credit.grant", customer_id=account.customer_id, account_id=account.id,
                     reason=reason, meta={**meta, "amount": amount, "currency": account.currency,
                                          "scheduled": True})
        return GrantResult(row, account.balance)
    row.posted_at = now
    posting = post_audited(
        actor, account, amount, kind=KIND_GRANT, source=SOURCE, source_id=row.id,
        description=customer_description(GRANT_DESCRIPTION, note), action="credit.grant",
        reason=reason, meta=meta)
    return GrantResult(row, posting.balance)


def list_for(account_id: str, *, limit: int, starting_after: str | None = None,
             ending_before: str | None = None) -> Page[CreditGrant]:
    """The account's credit grants, newest first, a page at a time."""
    return paginate(select(CreditGrant).where(CreditGrant.account_id == account_id), CreditGrant,
                    CreditGrant.created_at, limit=limit, starting_after=starting_after,
                    ending_before=ending_before)


BATCH = 500


def post_due(now: datetime | None = None, *, limit: int | None = None) -> int:
    """Post scheduled grants whose time has come (at most `limit`); returns how many were
    posted. Each grant is claimed (locked, or skipped while another run holds it) and
    leaves the due set when posted, so a next call, or a second run at once, continues."""
    return post_due_batch(now, limit=limit)[1]


def post_due_batch(now: datetime | None = None, *, limit: int | None = None) -> tuple[int, int]:
    """(claimed, posted): one batch of post_due; nothing claimed means none is left."""
    now = now or utcnow()
    due = list(db.session.execute(select(CreditGrant.id).where(
        CreditGrant.posted_at.is_(None), CreditGrant.expired_at.is_(None),
        CreditGrant.effective_from <= now,
        or_(CreditGrant.expires_at.is_(None), CreditGrant.expires_at > now))
        .order_by(CreditGrant.effective_from, CreditGrant.id).limit(limit)
        .with_for_update(skip_locked=True)).scalars())
    posted = 0
    for grant_id in due:
        row = db.session.get(CreditGrant, grant_id, populate_existing=True)
        if row is None or row.posted_at is not None:
            continue
        row.posted_at = now  # committed with the entry, or rolled back with it
        posting = ledger.post_entry(row.account_id, row.amount, kind=KIND_GRANT, source=SOURCE,
                                    source_id=row.id, currency=row.currency,
                                    description=customer_description(GRANT_DESCRIPTION, row.note),
                                    meta={"grant_id": row.id})
        posted += posting.posted
    return len(due), posted


def expire_due(now: datetime | None = None, *, limit: int | None = None) -> int:
    """Take back what is left of grants past `expires_at` (at most `limit`); returns how
    many were closed. Claimed like post_due: a closed grant leaves the due set."""
    now = now or utcnow()
    due = list(db.session.execute(select(CreditGrant.id).where(
        CreditGrant.expired_at.is_(None), CreditGrant.expires_at.is_not(None),
        CreditGrant.expires_at <= now).order_by(CreditGrant.expires_at, CreditGrant.id)
        .limit(limit).with_for_update(skip_locked=True)).scalars())
    closed = 0
    for grant_id in due:
        account_id = _account_of(grant_id)
        ledger.lock_account(account_id)
        row = db.session.get(CreditGrant, grant_id, populate_existing=True)
        if row is None or row.expired_at is not None:
            continue
        available = ledger.available_balance(account_id)
        left = 0 if row.posted_at is None else max(0, min(
            available, remaining(account_id, now).get(row.id, 0)))
        row.expired_at, row.expired_amount = now, left
        if left:
            ledger.post_entry(row.account_id, -left, kind=KIND_EXPIRY, source=SOURCE,
                              source_id=row.id, currency=row.currency,
                              description="Unused credit grant expired",
                              meta={"grant_id": row.id}, allow_negative=False)
        closed += 1
    return closed


def remaining(account_id: str, now: datetime | None = None) -> dict[str, int]:
    """What is left of each posted grant, replaying the account's debits in time order.

    Each debit is drawn from the grants in effect at that moment, soonest expiry first,
    then from paid credit. An expired grant keeps nothing. Rated usage accrues per local
    day, so days are the unit: a grant counts from the start of the day it was posted,
    and a day's usage (posted to the ledger or not) from the start of that day. Usage on
    the day a grant starts or expires is drawn from it, in the customer's favour.
    """
    now = now or utcnow()
    rows = list(db.session.execute(select(CreditGrant).where(
        CreditGrant.account_id == account_id, CreditGrant.posted_at.is_not(None))).scalars())
    debits = list(db.session.execute(
        select(LedgerEntry.created_at, -LedgerEntry.amount).where(
            LedgerEntry.account_id == account_id, LedgerEntry.amount < 0,
            LedgerEntry.kind.not_in((KIND_EXPIRY, KIND_USAGE)))).all())
    debits += db.session.execute(select(UsageCharge.day, UsageCharge.amount).where(
        UsageCharge.account_id == account_id, UsageCharge.amount > 0)).all()
    tz = periods.zone(db.session.execute(
        select(Account.time_zone).where(Account.id == account_id)).scalar_one())
    # (time, order, what): at one instant grants start before debits, which go before expiries.
    timeline: list[tuple[datetime, int, Any]] = [
        (periods.day_bucket(g.posted_at, tz), 0, g) for g in rows if g.posted_at is not None]
    timeline += [(at, 1, amount) for at, amount in debits]
    timeline += [(g.expired_at, 2, g) for g in rows if g.expired_at is not None]
    left: dict[str, int] = {}
    active: list[CreditGrant] = []
    for _, order, what in sorted(timeline, key=lambda t: (t[0], t[1])):
        if order == 0:
            left[what.id] = what.amount
            active.append(what)
            active.sort(key=lambda g: (g.expires_at is None, g.expires_at or now, g.posted_at))
        elif order == 2:
            left[what.id] = 0
            active.remove(what)
        else:
            owed = what
            for g in active:
                take = min(owed, left[g.id])
                left[g.id] -= take
                owed -= take
                if not owed:
                    break
    return left


def _account_of(grant_id: str) -> str:
    return db.session.execute(
        select(CreditGrant.account_id).where(CreditGrant.id == grant_id)).scalar_one()
