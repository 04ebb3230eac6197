"""What staff search finds a customer by, one row per customer, kept by every write.

`customer_search` holds, lowered, the customer's name and email, the emails of its users
(those working in it now and every member) and its accounts' names (`search_text`,
matched anywhere), and its ids: the customer's, its Stripe customer's and its accounts'
(`search_ids`, each after a newline, matched from its start). ONE pg_trgm GIN index over
both columns answers every way of matching on PostgreSQL; a btree on (created_at,
customer_id) walks customers newest first (services/staff/search.py chooses between
them). SQLite, for the demo, has the same rows and scans them.

The rows are kept by one mechanism, here: after every ORM flush that adds, removes or
changes a customer's name, email or Stripe id, a user's email or customer, an account's
name, id or customer, or a membership, the touched customers' rows are computed again
in SQL from the tables (the same SQL as the migration's backfill), so no writer has to
remember the search. A bulk `UPDATE` through `session.execute` bypasses the flush: such a
writer must call `refresh` (none does today; `services/billing/customers.remember` also
sets the attribute, which flushes).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    ForeignKey,
    Index,
    Select,
    String,
    Text,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.accounts import Account, Customer, User
from models.base import Model, UTCDateTime
from models.members import Membership

if TYPE_CHECKING:
    from sqlalchemy import Table

SEPARATOR = "\n"  # between the texts and before each id; typed text has none


class CustomerSearch(Model):
    __tablename__ = "customer_search"
    __table_args__ = (
        Index("ix_customer_search_created_at", "created_at", "customer_id"),
        Index("ix_customer_search_trgm", "search_text", "search_ids", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops", "search_ids": "gin_trgm_ops"}
              ).ddl_if(dialect="postgresql"),
    )

    customer_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the customer's
    search_text: Mapped[str] = mapped_column(Text)
    search_ids: Mapped[str] = mapped_column(Text)


def _joined(column: Any, *where: Any) -> Any:
    """SQL: the values of `column` in the rows `where` selects, joined by SEPARATOR ('')."""
    return func.coalesce(select(func.aggregate_strings(column, SEPARATOR)).where(*where)
                         .scalar_subquery(), "")


def rows_of(*where: ColumnElement[bool]) -> Select[Any]:
    """SQL: the search rows of the customers `where` selects (correlated subqueries, each
    served by a customer_id index, so a batch costs its size whatever the table's)."""
    c = Customer.__table__.c
    member_emails = _joined(User.__table__.c.email, Membership.__table__.c.customer_id == c.id,
                            User.__table__.c.id == Membership.__table__.c.user_id)
    text = func.lower(
        c.name + SEPARATOR + c.primary_email + SEPARATOR
        + _joined(User.__table__.c.email, User.__table__.c.customer_id == c.id) + SEPARATOR
        + member_emails + SEPARATOR
        + _joined(Account.__table__.c.name, Account.__table__.c.customer_id == c.id))
    ids = func.lower(
        SEPARATOR + c.id + SEPARATOR + func.coalesce(c.stripe_customer_id, "") + SEPARATOR
        + _joined(Account.__table__.c.id, Account.__table__.c.customer_id == c.id))
    return select(c.id, c.created_at, text, ids).where(*where)


def refresh(connection: Connection, customer_ids: Iterable[str]) -> None:
    """Compute the search rows of these customers again, from what this transaction sees.

    PostgreSQL: the rows are locked first (in id order, so two writers cannot deadlock),
    and computed by the next statement, which sees whatever a writer that held them
    committed: two transactions changing one customer at once cannot lose either change.
    """
    ids = sorted(set(customer_ids))
    if not ids:
        return
    table = cast("Table", CustomerSearch.__table__)
    pg = connection.dialect.name == "postgresql"
    if pg:
        connection.execute(select(table.c.customer_id).where(table.c.customer_id.in_(ids))
                           .order_by(table.c.customer_id).with_for_update())
    insert = (postgresql.insert if pg else sqlite.insert)(table).from_select(
        ["customer_id", "created_at", "search_text", "search_ids"],
        rows_of(Customer.__table__.c.id.in_(ids)))
    connection.execute(insert.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={"search_text": insert.excluded.search_text, "search_ids": insert.excluded.search_ids}))


# What each model's rows contribute: changes to these attributes touch the search.
_WATCHED: dict[type, tuple[str, ...]] = {
    Customer: ("name", "primary_email", "stripe_customer_id"),
    User: ("email", "customer_id"),
    Account: ("id", "name", "customer_id"),
    Membership: ("customer_id", "user_id"),
}


def _touched(session: Session) -> tuple[set[str], set[str]]:
    """The customers whose search rows the flush changed, and the users whose email (in
    every customer they are a member of) it changed."""
    customers: set[str] = set()
    users: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        watched = _WATCHED.get(type(obj))
        if watched is None:
            continue
        state = inspect(obj)
        changed = obj in session.new or obj in session.deleted or any(
            state.attrs[name].history.has_changes() for name in watched)
        if not changed:
            continue
        if isinstance(obj, Customer):
            if obj not in session.deleted:  # its row goes with it (ON DELETE CASCADE)
                customers.add(obj.id)
            continue
        history = state.attrs["customer_id"].history
        customers.update(v for v in (obj.customer_id, *history.deleted) if v)
        if isinstance(obj, User):
            users.add(obj.id)
    return customers, users


@event.listens_for(Session, "after_flush")
def _keep_search_rows(session: Session, flush_context: Any) -> None:
    customers, users = _touched(session)
    if not customers and not users:
        return
    connection = session.connection()
    if users:
        customers.update(connection.execute(
            select(Membership.__table__.c.customer_id)
            .where(Membership.__table__.c.user_id.in_(users))).scalars())
    refresh(connection, customers)
