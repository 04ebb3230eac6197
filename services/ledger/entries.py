"""The append-only ledger: locking an account, posting entries, reading balances.

`post_entry` is the only code that changes `accounts.balance`. It runs under
`lock_account` (the one way Tally locks an account) and inserts the entry and moves the
cached balance in the operation's transaction. The unique constraint on
(kind, source, source_id) makes every cause land once: a cause already on the ledger
posts nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import Account, LedgerEntry
from models.base import utcnow
from models.ledger import KINDS
from services import uow
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


# What runs, in the same transaction, after available credit moves: auto-recharge and the
# low-balance notice watch it (registered once, at import, by the modules that watch).
_watchers: list[Callable[[str, int], None]] = []


def watch_balance(watcher: Callable[[str, int], None]) -> None:
    """Call `watcher(account_id, change)` whenever an account's available credit moves
    (`change` < 0: a debit; > 0: a credit), in the transaction that moved it."""
    if watcher not in _watchers:
        _watchers.append(watcher)


def balance_moved(account_id: str, change: int) -> None:
    """Tell the watchers that available credit moved: from `post_entry`, and from rating,
    which moves it through pending usage (the gate, ingestion)."""
    if change:
        for watcher in _watchers:
            watcher(account_id, change)


def lock_account(account_id: str) -> Account:
    """Lock the account row until the operation ends, and read it fresh: the one way
    Tally locks an account (nothing else moves its money until the commit)."""
    account = uow.lock(Account, account_id)
    if account is None:
        raise NotFound(f"No such account: {account_id}", param="account_id")
    return account


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
) -> Posting:
    """Append one entry and move the cached balance, exactly once per cause.

    A cause already on the ledger posts nothing (`Posting.posted` is False). Refuses an
    entry in another currency, and with `allow_negative=False` one that would take the
    balance below zero; the operation then rolls back.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("ledger amounts are integers in minor units")
    account = lock_account(account_id)
    if currency is not None and currency != account.currency:
        raise Conflict(
            f"This account is billed in {account.currency.upper()}, not {currency.upper()}.",
            code="currency_mismatch",
        )
    if not allow_negative and account.balance + amount < 0:
        raise Conflict("Not enough credit for this charge.", code="insufficient_credit")
    entry = _insert_once({
        "account_id": account_id, "amount": amount, "currency": account.currency, "kind": kind,
        "source": source, "source_id": source_id, "description": description,
        "meta": meta or {}, "created_at": utcnow()})
    if entry is None:
        return Posting(None, account.balance, account.currency)
    balance = db.session.execute(
        update(Account).where(Account.id == account_id)
        .values(balance=Account.balance + amount).returning(Account.balance)).scalar_one()
    balance_moved(account_id, amount)
    return Posting(entry, int(balance), account.currency)


def _insert_once(values: dict[str, Any]) -> LedgerEntry | None:
    """Insert the entry unless its cause is on the ledger already (then None)."""
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LedgerEntry)
    return db.session.execute(
        insert.values(values).on_conflict_do_nothing(index_elements=["kind", "source", "source_id"])
        .returning(LedgerEntry)).scalar_one_or_none()


def current_balance(account_id: str) -> int:
    """The account's posted balance (the cached sum of its entries)."""
    return int(db.session.execute(
        select(Account.balance).where(Account.id == account_id)).scalar_one())


def available_balance(account_id: str) -> int:
    """What the customer can spend (`Account.available_balance`), read fresh."""
    return int(db.session.execute(
        select(Account.available_balance).where(Account.id == account_id)).scalar_one())


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
    """The account's newest entries."""
    return list(
        db.session.execute(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account_id)
            .order_by(LedgerEntry.id.desc())
            .limit(limit)
        ).scalars()
    )
