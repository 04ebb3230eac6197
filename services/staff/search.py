"""Finding customers as staff type: by email (of the customer or any of its users), name,
account name, customer or account id, or Stripe customer id (ids also by prefix).

On PostgreSQL each way of matching is its own indexed lookup (migrations add the indexes:
pg_trgm GIN indexes on the lowered text columns for `%text%`, pattern btrees for id
prefixes), and the console asks each for its newest 25 before merging them, so a keystroke
costs a few index probes at any number of customers. Text shaped like an id (`cust_…`,
`acct_…`, `cus_…`) looks up ids only. SQLite, for the demo, runs one plain LIKE query.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, func, or_, select, union_all
from sqlalchemy.orm import selectinload

from extensions import db
from models import Account, Customer, User

MAX_QUERY = 200
# Prefixes of the ids staff paste: ours (customers, accounts) and Stripe's customers.
_ID_SHAPE = re.compile(r"^(cust|acct|cus)_[A-Za-z0-9]*$")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _clean(q: str | None) -> str:
    return (q or "").strip()[:MAX_QUERY]


def customer_query(q: str | None) -> Select[Customer]:
    """Customers matching `q` (any order; callers sort and page)."""
    query = select(Customer).options(selectinload(Customer.accounts))
    text = _clean(q)
    if not text:
        return query
    if not _postgresql():
        return query.where(_sqlite_match(text))
    ids = union_all(*(branch.with_only_columns(Customer.id) for branch in _branches(text)))
    return query.where(Customer.id.in_(ids.scalar_subquery()))


def search_customers(q: str | None, limit: int = 25) -> list[Customer]:
    """Customers matching `q`, newest first (empty: the newest customers)."""
    text = _clean(q)
    newest = (Customer.created_at.desc(), Customer.id.desc())
    if not text or not _postgresql():
        return list(db.session.execute(
            customer_query(text).order_by(*newest).limit(limit)).scalars())
    # Each lookup gives its newest `limit`; the newest `limit` of all of them are the answer.
    found = union_all(*(branch.with_only_columns(Customer.id, Customer.created_at)
                        .order_by(*newest).limit(limit) for branch in _branches(text))).subquery()
    ids = select(found.c.id).distinct()
    return list(db.session.execute(
        select(Customer).options(selectinload(Customer.accounts))
        .where(Customer.id.in_(ids.scalar_subquery())).order_by(*newest).limit(limit)).scalars())


def _branches(text: str) -> list[Select[Any]]:
    """One query per way of matching, each able to use an index of its own (PostgreSQL;
    backslash is its default LIKE escape, so the patterns need no ESCAPE clause, which the
    trigram indexes could not serve)."""
    prefix = _escape_like(text) + "%"
    customers = select(Customer)
    by_account = select(Customer).join(Account, Account.customer_id == Customer.id)
    if _ID_SHAPE.match(text):
        return [customers.where(Customer.id.like(prefix)),
                customers.where(Customer.stripe_customer_id.like(prefix)),
                by_account.where(Account.id.like(prefix))]
    like = "%" + _escape_like(text.lower()) + "%"
    by_user = select(Customer).join(User, User.customer_id == Customer.id)
    return [customers.where(func.lower(Customer.name).like(like)),
            customers.where(func.lower(Customer.primary_email).like(like)),
            by_user.where(func.lower(User.email).like(like)),
            by_account.where(func.lower(Account.name).like(like)),
            customers.where(Customer.id.like(prefix)),
            customers.where(Customer.stripe_customer_id.like(prefix)),
            by_account.where(Account.id.like(prefix))]


def _sqlite_match(text: str) -> Any:
    """The demo's search: one query of plain LIKEs (SQLite's LIKE ignores ASCII case)."""
    like = f"%{_escape_like(text.lower())}%"
    prefix = f"{_escape_like(text)}%"
    users = select(User.customer_id).where(func.lower(User.email).like(like, escape="\\"))
    accts = select(Account.customer_id).where(or_(
        Account.id.like(prefix, escape="\\"), func.lower(Account.name).like(like, escape="\\")))
    return or_(
        func.lower(Customer.name).like(like, escape="\\"),
        func.lower(Customer.primary_email).like(like, escape="\\"),
        Customer.id.like(prefix, escape="\\"),
        Customer.stripe_customer_id.like(prefix, escape="\\"),
        Customer.id.in_(users),
        Customer.id.in_(accts),
    )
