"""Posting to the append-only ledger and reading balances.

`post_entry` is the only code that changes `accounts.balance`. It locks the account
row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serialises writers), inserts the
entry and moves the cached balance in one transaction. The unique constraint on
(kind, source, source_id) decides races: a duplicate cause posts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Account, LedgerEntry
from models.ledger import KINDS
from services.errors import Conflict, NotFound
from services.pagination import Page, paginate


@dataclass(frozen=True)
class Posting:
    entry: LedgerEntry | None  # None when the cause was already on the ledger
    balance: int
    currency: str

    @property
    def posted(self) -> bool:
        return self.entry is not None


def post_entry(
    account_id: str,
    amount: int,
    *,
    kind: str,
    source: str,
    source_id: str,
    description: str = "",
    currency: str | None = None,
    meta: dict[str, Any] | None = None,
    allow_negative: bool = True,
    on_posted: Callable[[LedgerEntry], None] | None = None,
) -> Posting:
    """Append one entry and move the cached balance, exactly once per cause.

    `on_posted` runs inside the same transaction, after the entry and before the commit,
    for bookkeeping that must land with the entry or not at all. Commits on success;
    rolls back and posts nothing on a duplicate cause.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("ledger amounts are integers in minor units")
    session = db.session
    try:
        account = session.execute(
            select(Account)
            .where(Account.id == account_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if account is None:
            raise NotFound(f"No such account: {account_id}", param="account_id")
        if currency is not None and currency != account.currency:
            raise Conflict(
                f"This account is billed in {account.currency.upper()}, not {currency.upper()}.",
                code="currency_mismatch",
            )
        if not allow_negative and account.balance + amount < 0:
            raise Conflict("Not enough credit for this charge.", code="insufficient_credit")
        already = session.execute(
            select(LedgerEntry.id).where(
                LedgerEntry.kind == kind,
                LedgerEntry.source == source,
                LedgerEntry.source_id == source_id,
            )
        ).first()
        if already is not None:
            session.rollback()
            return Posting(None, current_balance(account_id), _currency_of(account_id))
        entry = LedgerEntry(
            account_id=account_id,
            amount=amount,
            currency=account.currency,
            kind=kind,
            source=source,
            source_id=source_id,
            description=description,
            meta=meta or {},
        )
        session.add(entry)
        session.flush()
        new_balance = session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(balance=Account.balance + amount)
            .returning(Account.balance)
        ).scalar_one()
        currency_code = account.currency
        if on_posted is not None:
            on_posted(entry)
        session.commit()
        return Posting(entry, new_balance, currency_code)
    except IntegrityError:
        # Another transaction posted the same cause between our check and insert.
        session.rollback()
        return Posting(None, current_balance(account_id), _currency_of(account_id))
    except Exception:
        session.rollback()
        raise


def current_balance(account_id: str) -> int:
    return db.session.execute(
        select(Account.balance).where(Account.id == account_id)
    ).scalar_one()


def available_balance(account_id: str) -> int:
    """The balance less rated usage not yet posted: what the customer can spend."""
    return db.session.execute(
        select(Account.balance - Account.pending_usage).where(Account.id == account_id)
    ).scalar_one()


def _currency_of(account_id: str) -> str:
    return db.session.execute(
        select(Account.currency).where(Account.id == account_id)
    ).scalar_one()


def ledger_sum(account_id: str) -> int:
    """The balance recomputed from entries; equals the cache (tests prove it)."""
    return int(
        db.session.execute(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.account_id == account_id
            )
        ).scalar_one()
    )


def list_for(account_id: str, *, limit: int, starting_after: str | None = None,
             ending_before: str | None = None) -> Page[LedgerEntry]:
    """The account's entries, newest first, a page at a time."""
    return paginate(select(LedgerEntry).where(LedgerEntry.account_id == account_id), LedgerEntry,
                    LedgerEntry.created_at, limit=limit, starting_after=starting_after,
                    ending_before=ending_before)


def recent_entries(account_id: str, limit: int = 10) -> list[LedgerEntry]:
    return list(
        db.session.execute(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
        ).scalars()
    )
