"""Finding customers as staff type: by email (of the customer or any of its users), name,
account name, customer or account id, or Stripe customer id (ids also by prefix).

On PostgreSQL each way of matching is a lookup of its own, and the console asks each for
its newest 25 before merging them, by the cheaper of two plans (`_newest_matches`): walk
the newest customers (quick when the text is common), else the lookup's index (pg_trgm GIN
indexes on the lowered names and emails serve `%text%`, pattern btrees serve id prefixes;
quick when the text is rare). Text shaped like an id (`cust_…`, `acct_…`, `cus_…`) looks up
ids only. One or two characters, which no trigram index can serve, look among the newest
SHORT_WALK customers only, at their own names, emails and ids. SQLite, for the demo, runs
one plain LIKE query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, true, tuple_, union_all
from sqlalchemy import text as sql_text
from sqlalchemy.orm import aliased, selectinload

from extensions import db
from models import Account, Customer, User
from services.errors import InvalidInput
from services.pagination import Page

MAX_QUERY = 200
WALK = 2_000  # newest customers looked at before asking the indexes
WALK_PER_RESULT = 50  # and more for a longer page (the API's limit of up to 100)
SHORT_WALK = 10_000  # the customers text of one or two characters is looked for among
MATCHES_READ = 10_000  # more index matches than this: a common text, walked for in full
# Prefixes of the ids staff paste: ours (customers, accounts) and Stripe's customers.
_ID_SHAPE = re.compile(r"^(cust|acct|cus)_[A-Za-z0-9]*$")

# A way of matching: given customers (the table, or its newest rows) and whether they are
# walked, a condition.
Match = Callable[[Any, bool], ColumnElement[bool]]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def indexed() -> bool:
    """Whether search has its indexes here (PostgreSQL) and so its two plans."""
    return _postgresql()


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
    ids = union_all(*(select(Customer.id).where(match(Customer, False))
                      for match in _matches(text)))
    return query.where(Customer.id.in_(ids.scalar_subquery()))


def search_customers(q: str | None, limit: int = 25) -> list[Customer]:
    """Customers matching `q`, newest first (empty: the newest customers)."""
    text = _clean(q)
    newest = (Customer.created_at.desc(), Customer.id.desc())
    if not text or not _postgresql():
        return list(db.session.execute(
            customer_query(text).order_by(*newest).limit(limit)).scalars())
    short = len(text) < 3 and not _ID_SHAPE.match(text)
    db.session.execute(sql_text("SET LOCAL jit = off"))  # compiling costs more than it saves
    ids = _newest_matches(text, limit, short=short)
    customers = {c.id: c for c in db.session.execute(
        select(Customer).options(selectinload(Customer.accounts))
        .where(Customer.id.in_(ids))).scalars()}
    return [customers[i] for i in ids if i in customers]


def search_page(q: str, *, limit: int, starting_after: str | None = None) -> Page[Customer]:
    """The /v1 list of customers matching `q` (PostgreSQL), newest first, a page at a time,
    the same way as the console's search: `starting_after` is a customer of the list."""
    text = _clean(q)
    short = len(text) < 3 and not _ID_SHAPE.match(text)
    older_than = None
    if starting_after:
        older_than = db.session.execute(select(Customer.created_at, Customer.id).where(
            Customer.id == starting_after,
            or_(*(m(Customer, True) for m in _matches(text, own_only=short))))).first()
        if older_than is None:
            raise InvalidInput(f"No such object in this list: {starting_after}",
                               param="starting_after")
    db.session.execute(sql_text("SET LOCAL jit = off"))
    ids = _newest_matches(text, limit + 1, short=short,
                          older_than=None if older_than is None else tuple(older_than))
    customers = {c.id: c for c in db.session.execute(
        select(Customer).options(selectinload(Customer.accounts))
        .where(Customer.id.in_(ids))).scalars()}
    items = [customers[i] for i in ids if i in customers]
    return Page(items[:limit], len(items) > limit)


def _newest_matches(text: str, limit: int, *, short: bool,
                    older_than: tuple[Any, ...] | None = None) -> list[str]:
    """The ids of the newest `limit` matches, by the cheaper of two plans, each exact.

    First the newest `walk` customers, newest first, every way of matching at once: a
    common text has `limit` matches among them. If not, the text is rare, and each way's
    own index finds all its matches (up to MATCHES_READ) to sort; a way with more walks
    newest first. The planner's guesses for `LIKE '%text%'` are poor either way, so the
    plan is chosen here. Text of one or two characters, which no trigram index serves,
    only walks, and only the customers' own columns (no probe of users and accounts).
    """
    matches = _matches(text, own_only=short)
    walk = SHORT_WALK if short else max(WALK, WALK_PER_RESULT * limit)
    newest = (Customer.created_at.desc(), Customer.id.desc())
    older = tuple_(Customer.created_at, Customer.id) < tuple_(*older_than) if older_than else true()
    recent = aliased(Customer, select(Customer).where(older).order_by(*newest).limit(walk)
                     .subquery())
    found: set[tuple[Any, str]] = {(at, cid) for at, cid in db.session.execute(
        select(recent.created_at, recent.id).where(or_(*(m(recent, True) for m in matches)))
        .order_by(recent.created_at.desc(), recent.id.desc()).limit(limit))}
    if len(found) == limit or short:
        return [cid for _, cid in sorted(found, reverse=True)]
    for match in matches:
        ways = select(Customer.created_at, Customer.id).where(match(Customer, False), older)
        with _index_plan():
            rows = db.session.execute(ways.limit(MATCHES_READ)).all()
        if len(rows) == MATCHES_READ:
            rows = db.session.execute(ways.order_by(*newest).limit(limit)).all()
        found |= {(at, cid) for at, cid in rows}
    return [cid for _, cid in sorted(found, reverse=True)[:limit]]


# The index plan: the matches from the column's index, then each customer by its key (the
# planner, expecting far more matches than a rare text has, would rather scan customers).
_INDEX_PLAN = {"enable_seqscan": "off", "enable_hashjoin": "off", "enable_mergejoin": "off"}


@contextmanager
def _index_plan() -> Iterator[None]:
    for name, value in _INDEX_PLAN.items():
        db.session.execute(sql_text(f"SET LOCAL {name} = {value}"))
    try:
        yield
    finally:
        for name in _INDEX_PLAN:
            db.session.execute(sql_text(f"SET LOCAL {name} = DEFAULT"))


def _matches(text: str, *, own_only: bool = False) -> list[Match]:
    """One condition per way of matching, each able to use an index of its own
    (PostgreSQL; backslash is its default LIKE escape, so the patterns need no ESCAPE
    clause, which the trigram indexes could not serve). `walking`: the same test as
    `strpos`, which no index serves, so the planner probes each walked customer's users
    and accounts instead of collecting every match first."""
    prefix = _escape_like(text) + "%"

    def of(model: Any, test: Callable[[bool], ColumnElement[bool]]) -> Match:
        """A way of matching through a user's or an account's column: walking, a probe of
        the customer's rows; else the ids of every match, from the column's index."""
        return lambda c, walking: exists().where(
            model.customer_id == c.id, test(True)) if walking else c.id.in_(
            select(model.customer_id).where(test(False)))

    ids: list[Match] = [lambda c, _: c.id.like(prefix)]  # customer ids may be chosen
    if _could_start(text, "cus_"):  # Stripe's customer ids all do
        ids.append(lambda c, _: c.stripe_customer_id.like(prefix))
    if _could_start(text, "acct_") and not own_only:  # Tally's account ids all do
        ids.append(of(Account, lambda _: Account.id.like(prefix)))
    if _ID_SHAPE.match(text):
        return ids
    lowered = text.lower()
    like = "%" + _escape_like(lowered) + "%"

    def contains(column: Any, walking: bool) -> ColumnElement[bool]:
        return func.strpos(func.lower(column), lowered) > 0 if walking else \
            func.lower(column).like(like)

    own: list[Match] = [lambda c, w: contains(c.name, w), lambda c, w: contains(c.primary_email, w)]
    if own_only:
        return own + ids
    return [*own, of(User, lambda w: contains(User.email, w)),
            of(Account, lambda w: contains(Account.name, w)), *ids]


def _could_start(text: str, id_prefix: str) -> bool:
    """Whether `text` can be the start of an id beginning with `id_prefix`."""
    return text.startswith(id_prefix) or id_prefix.startswith(text)


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
