"""Closing billing periods: `flask --app app close-period`, safe to run any number of times.

For each account with rated usage: post its closed days to the ledger (one entry per
meter per day) and issue the previous month's usage statement (once per account and
period). It also ends grace periods that ran out. Every step is keyed by its cause, so
a second run, or two runs at once, issue nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from extensions import db
from models import Account, Meter, UsageCharge, UsageCounter
from models.base import utcnow
from models.billing import INVOICE_STATEMENT
from services.billing import invoices, subscriptions
from services.usage import periods, rating


@dataclass
class CloseResult:
    days_posted: int = 0
    statements: int = 0
    downgraded: int = 0


def previous_period(account: Account, now: datetime) -> periods.Period:
    """The billing period before the one `now` is in, in the account's time zone."""
    current = periods.month_of(now, account.time_zone)
    return periods.month_of(current.start - timedelta(microseconds=1), account.time_zone)


def statement_lines(account: Account, period: periods.Period) -> list[invoices.Line]:
    """A usage statement's lines: what each priced meter cost in the period."""
    rows = db.session.execute(
        select(Meter, func.sum(UsageCharge.amount))
        .join(Meter, Meter.id == UsageCharge.meter_id)
        .where(UsageCharge.account_id == account.id, UsageCharge.day >= period.start,
               UsageCharge.day < period.end)
        .group_by(Meter.id).order_by(Meter.name)).all()
    lines = []
    for meter, amount in rows:
        units = db.session.execute(select(UsageCounter.value).where(
            UsageCounter.account_id == account.id, UsageCounter.meter_id == meter.id,
            UsageCounter.period_start == period.start)).scalar_one_or_none() or 0
        lines.append(invoices.Line(f"{meter.name}: {units:,} {meter.unit} in {period.label}",
                                   int(amount), quantity=int(units)))
    return lines


BATCH = 500
# Charges this recent may still owe a statement (the previous month, in any time zone).
STATEMENT_WINDOW = timedelta(days=62)


def accounts_to_close(after: str, now: datetime, limit: int = BATCH) -> list[str]:
    """The next `limit` accounts (in id order, after `after`) that may have work: a recent
    charge (a statement may be due) or a charge not yet posted."""
    return list(db.session.execute(
        select(UsageCharge.account_id).distinct()
        .where(UsageCharge.account_id > after,
               or_(UsageCharge.day >= now - STATEMENT_WINDOW,
                   UsageCharge.amount != UsageCharge.posted))
        .order_by(UsageCharge.account_id).limit(limit)).scalars())


def claim(account_ids: list[str]) -> list[str]:
    """Lock the accounts no other run is working on (PostgreSQL skips the locked ones, so
    two runs at once share the work); the locks last until the batch commits."""
    return list(db.session.execute(
        select(Account.id).where(Account.id.in_(account_ids)).order_by(Account.id)
        .with_for_update(skip_locked=True)).scalars())


def close_account(account_id: str, now: datetime, result: CloseResult) -> None:
    """Post the account's closed days and issue its last period's statement (each once)."""
    account = db.session.get(Account, account_id)
    assert account is not None
    result.days_posted += rating.post_closed_days(account, now)
    period = previous_period(account, now)
    source = f"{account.id}:{period.label}"
    if invoices.find(INVOICE_STATEMENT, source) is not None:
        return
    lines = statement_lines(account, period)
    if lines:
        invoices.issue(account, kind=INVOICE_STATEMENT, source_id=source,
                       currency=account.currency, lines=lines, paid_at=period.end,
                       period=(period.start, period.end))
        result.statements += 1


def close(now: datetime | None = None) -> CloseResult:
    """Post closed days of rated usage, issue last period's statements, end expired grace
    periods, all in the caller's transaction (the nightly job, interfaces/jobs.py, runs
    the same steps a batch of accounts per transaction)."""
    now = now or utcnow()
    result = CloseResult()
    after = ""
    while ids := accounts_to_close(after, now):
        for account_id in claim(ids):
            close_account(account_id, now, result)
        after = ids[-1]
    result.downgraded = subscriptions.end_expired_grace(now)
    return result
