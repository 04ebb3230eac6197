"""Finding customers as staff type: by email (of the customer or any of its users), name,
account name, customer or account id, or Stripe customer id (ids by their start).

Every way of matching reads one row per customer (models/search.py: the lowered texts,
and the ids each after a newline), so a search is one condition on one table: the text
anywhere in `search_text`, or at the start of an id in `search_ids`. On PostgreSQL ONE
pg_trgm GIN index serves it, and the console asks for the newest 25 by the cheaper of two
plans (`_newest_ids`): walk the newest rows (quick when the text is common), else the
index (quick when it is rare). Text shaped like an id (`cust_…`, `acct_…`, `cus_…`) looks
at ids only. One or two characters, or text with no letter or digit, which no trigram
index can serve, look among the newest SHORT_WALK customers only. SQLite, for the demo,
scans the same rows with LIKE, so both databases find the same customers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, true, tuple_
from sqlalchemy import text as sql_text
from sqlalchemy.orm import selectinload

from extensions import db
from models import Customer, CustomerSearch
from models.search import SEPARATOR
from services.errors import InvalidInput
from services.pagination import Page

MAX_QUERY = 200
WALK = 2_000  # newest customers looked at before asking the index
WALK_PER_RESULT = 50  # and more for a longer page (the API's limit of up to 100)
SHORT_WALK = 10_000  # the customers text of one or two characters is looked for among
LONG_WALK = 20_000  # at most this far when the first walk's matches say it is enough
MATCHES_READ = 10_000  # more index matches than this: a common text, walked for in full
# Prefixes of the ids staff paste: ours (customers, accounts) and Stripe's customers.
_ID_SHAPE = re.compile(r"^(cust|acct|cus)_[A-Za-z0-9]*$")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def indexed() -> bool:
    """Whether search has its index here (PostgreSQL) and so its two plans."""
    return _postgresql()


def _clean(q: str | None) -> str:
    return (q or "").strip()[:MAX_QUERY]


def _is_short(text: str) -> bool:
    """Text no trigram index can serve: one or two characters, or no letter or digit at
    all (`---`, `@@@`: pg_trgm finds no trigram in it, and its index would hand back every
    row to check)."""
    if _ID_SHAPE.match(text):
        return False
    return len(text) < 3 or not any(ch.isalnum() for ch in text)


def matches(text: str, rows: Any = CustomerSearch) -> ColumnElement[bool]:
    """The condition on search rows (the table, or a subquery of it) for `text`.

    PostgreSQL's default LIKE escape is the backslash, so its patterns need no ESCAPE
    clause (with one, the trigram index could not serve them); SQLite needs it spelled."""
    escape = {} if _postgresql() else {"escape": "\\"}
    lowered = _escape_like(text.lower().replace(SEPARATOR, " "))
    by_id: ColumnElement[bool] = rows.search_ids.like(f"%{SEPARATOR}{lowered}%", **escape)
    if _ID_SHAPE.match(text):
        return by_id
    return or_(rows.search_text.like(f"%{lowered}%", **escape), by_id)


def customer_query(q: str | None) -> Select[Customer]:
    """Customers matching `q` (any order; callers sort and page)."""
    query = select(Customer).options(selectinload(Customer.accounts))
    text = _clean(q)
    if not text:
        return query
    return query.where(Customer.id.in_(
        select(CustomerSearch.customer_id).where(matches(text)).scalar_subquery()))


def search_customers(q: str | None, limit: int = 25) -> list[Customer]:
    """Customers matching `q`, newest first (empty: the newest customers)."""
    text = _clean(q)
    newest = (Customer.created_at.desc(), Customer.id.desc())
    if not text or not _postgresql():
        return list(db.session.execute(
            customer_query(text).order_by(*newest).limit(limit)).scalars())
    return _customers(_newest_ids(text, limit))


def search_page(q: str, *, limit: int, starting_after: str | None = None) -> Page[Customer]:
    """The /v1 list of customers matching `q` (PostgreSQL), newest first, a page at a time,
    the same way as the console's search: `starting_after` is a customer of the list."""
    text = _clean(q)
    older_than = None
    if starting_after:
        older_than = db.session.execute(
            select(CustomerSearch.created_at, CustomerSearch.customer_id)
            .where(CustomerSearch.customer_id == starting_after, matches(text))).first()
        if older_than is None:
            raise InvalidInput(f"No such object in this list: {starting_after}",
                               param="starting_after")
    items = _customers(_newest_ids(
        text, limit + 1, older_than=None if older_than is None else tuple(older_than)))
    return Page(items[:limit], len(items) > limit)


def _customers(ids: list[str]) -> list[Customer]:
    """These customers with their accounts, in this order."""
    found = {c.id: c for c in db.session.execute(
        select(Customer).options(selectinload(Customer.accounts))
        .where(Customer.id.in_(ids))).scalars()}
    return [found[i] for i in ids if i in found]


def _newest_ids(text: str, limit: int, *, older_than: tuple[Any, ...] | None = None) -> list[str]:
    """The ids of the newest `limit` customers matching `text` (PostgreSQL), by the cheaper
    of two plans, each exact.

    First the newest `walk` rows, newest first: a common text has `limit` matches among
    them. If it has some, they tell how far a walk would go for `limit`: up to LONG_WALK
    rows, walk that far. Otherwise the text is rare, and the trigram index finds all its
    matches (up to MATCHES_READ) to sort; more than that, and the rows are walked newest
    first until `limit` match. The planner's guesses for `LIKE '%text%'` are poor either
    way, so the plan is chosen here. Text no trigram index serves (`_is_short`) only walks.
    """
    db.session.execute(sql_text("SET LOCAL jit = off"))  # compiling costs more than it saves
    short = _is_short(text)
    walk = SHORT_WALK if short else max(WALK, WALK_PER_RESULT * limit)
    rows = CustomerSearch
    newest = (rows.created_at.desc(), rows.customer_id.desc())
    older = tuple_(rows.created_at, rows.customer_id) < tuple_(*older_than) if older_than else true()

    def newest_rows(n: int) -> list[Any]:
        recent = select(rows.created_at, rows.customer_id, rows.search_text, rows.search_ids
                        ).where(older).order_by(*newest).limit(n).subquery()
        return list(db.session.execute(
            select(recent.c.created_at, recent.c.customer_id).where(matches(text, recent.c))
            .order_by(recent.c.created_at.desc(), recent.c.customer_id.desc()).limit(limit)))

    found = newest_rows(walk)
    if len(found) == limit or short:
        return [cid for _, cid in found]
    if found and (further := 2 * walk * limit // len(found)) <= LONG_WALK:
        found = newest_rows(further)  # twice as far as the matches so far say it takes
        if len(found) == limit:
            return [cid for _, cid in found]
    ways = select(rows.created_at, rows.customer_id).where(matches(text), older)
    with _plan(INDEX_PLAN):
        found = list(db.session.execute(ways.limit(MATCHES_READ)))
    if len(found) == MATCHES_READ:
        with _plan(WALK_PLAN):
            found = list(db.session.execute(ways.order_by(*newest).limit(limit)))
    return [cid for _, cid in sorted(found, reverse=True)[:limit]]


# The index plan: every match from the trigram index, then each row by its place (the
# planner, expecting far more matches than a rare text has, would rather scan). The walk:
# the rows newest first, by the (created_at, customer_id) index.
INDEX_PLAN = {"enable_seqscan": "off", "enable_indexscan": "off"}
WALK_PLAN = {"enable_seqscan": "off", "enable_bitmapscan": "off"}


@contextmanager
def _plan(settings: dict[str, str]) -> Iterator[None]:
    for name, value in settings.items():
        db.session.execute(sql_text(f"SET LOCAL {name} = {value}"))
    try:
        yield
    finally:
        for name in settings:
            db.session.execute(sql_text(f"SET LOCAL {name} = DEFAULT"))
