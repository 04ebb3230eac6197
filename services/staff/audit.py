"""The staff audit log: record an action, and read the log back (filtered, paged, as CSV).

Rows are only ever added (models/audit.py refuses updates and deletes). `record` adds a
row to the current transaction without committing, so an action and its audit row
commit together or not at all.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.orm import selectinload

from extensions import db
from models import AuditEvent, User
from models.accounts import ROLE_STAFF
from models.audit import VIA_CLI

# Actions that count as "staff looked at this customer's account" on the customer's dashboard.
VIEW_ACTIONS = ("customer.view", "impersonation.start")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_UA_LENGTH = 400


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where. Views build it from the request; services never read it."""

    staff: User | None  # the true user: the staff member (None for the CLI)
    via: str
    ip: str | None = None
    user_agent: str | None = None
    impersonated: User | None = None  # the customer user, while viewing as one

    @classmethod
    def cli(cls) -> Actor:
        return cls(staff=None, via=VIA_CLI)


def record(actor: Actor, action: str, *, customer_id: str | None = None,
           account_id: str | None = None, reason: str = "", before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> AuditEvent:
    """Add one audit row to the current transaction (the caller commits)."""
    row = AuditEvent(
        staff_user_id=actor.staff.id if actor.staff else None,
        staff_email=actor.staff.email if actor.staff else "",
        impersonated_user_id=actor.impersonated.id if actor.impersonated else None,
        customer_id=customer_id,
        account_id=account_id,
        action=action,
        reason=reason or "",
        via=actor.via,
        ip=(actor.ip or None) and actor.ip[:64],
        user_agent=(actor.user_agent or None) and actor.user_agent[:_UA_LENGTH],
        before=_jsonable(before),
        after=_jsonable(after),
        meta=_jsonable(meta) or {},
    )
    db.session.add(row)
    return row


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Datetimes become ISO strings, so the row stores plain JSON."""
    if value is None:
        return None
    plain: dict[str, Any] = json.loads(json.dumps(value, default=_default))
    return plain


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# Reading the log -------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    staff_id: str | None = None
    customer_id: str | None = None
    account_id: str | None = None
    action: str | None = None
    without: tuple[str, ...] = ()  # actions left out
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def query(self) -> Select[AuditEvent]:
        q = select(AuditEvent)
        if self.staff_id:
            q = q.where(AuditEvent.staff_user_id == self.staff_id)
        if self.customer_id:
            q = q.where(AuditEvent.customer_id == self.customer_id)
        if self.account_id:
            q = q.where(AuditEvent.account_id == self.account_id)
        if self.without:
            q = q.where(AuditEvent.action.not_in(self.without))
        if self.action:
            q = q.where(AuditEvent.action == self.action)
        if self.since:
            q = q.where(AuditEvent.created_at >= self.since,
                        AuditEvent.id > _id_before(self.since - CLOCK_SLACK))
        if self.until:
            q = q.where(AuditEvent.created_at < self.until,
                        AuditEvent.id < _id_from(self.until + CLOCK_SLACK))
        return q


# Ids only grow, and a row's created_at is taken just before its id, so ids follow time
# to within the length of a transaction. Dates become id bounds, with an hour of slack, so
# a dated page is a range of the primary key (the created_at test stays, and is exact).
CLOCK_SLACK = timedelta(hours=1)
_NO_ID = 2**63 - 1


def _id_before(at: datetime) -> ColumnElement[int]:
    """SQL: the id of the newest row dated before `at` (0 if none)."""
    return func.coalesce(select(AuditEvent.id).where(AuditEvent.created_at < at)
                         .order_by(AuditEvent.created_at.desc()).limit(1).scalar_subquery(), 0)


def _id_from(at: datetime) -> ColumnElement[int]:
    """SQL: the id of the oldest row dated `at` or later (past every id if none)."""
    return func.coalesce(select(AuditEvent.id).where(AuditEvent.created_at >= at)
                         .order_by(AuditEvent.created_at.asc()).limit(1).scalar_subquery(), _NO_ID)


@dataclass(frozen=True)
class Page:
    """Newest first. `older` / `newer` are the cursors for the next and previous pages."""

    events: list[AuditEvent]
    older: int | None = None
    newer: int | None = None


def page(filters: Filters, *, before: int | None = None, after: int | None = None,
         limit: int = PAGE_SIZE) -> Page:
    """Keyset pages by id (ids only grow, so id order is time order): `before` an id for
    older rows, `after` an id for newer ones."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    q = filters.query()
    # A page names each row's customer and impersonated user: loaded in one query each.
    shown = q.options(selectinload(AuditEvent.customer), selectinload(AuditEvent.impersonated))
    if after is not None:
        rows = list(reversed(db.session.execute(
            shown.where(AuditEvent.id > after).order_by(AuditEvent.id.asc()).limit(limit))
            .scalars().all()))
    else:
        q_page = shown.where(AuditEvent.id < before) if before is not None else shown
        rows = list(db.session.execute(q_page.order_by(AuditEvent.id.desc()).limit(limit)).scalars())
    older = rows[-1].id if rows and _exists(q.where(AuditEvent.id < rows[-1].id)) else None
    newer = rows[0].id if rows and _exists(q.where(AuditEvent.id > rows[0].id)) else None
    return Page(rows, older=older, newer=newer)


def _exists(q: Select[AuditEvent]) -> bool:
    return db.session.execute(q.with_only_columns(AuditEvent.id).limit(1)).first() is not None


READS = ("customer.view", "impersonation.view")  # pages and records looked at, changing nothing


def for_customer(customer_id: str, limit: int = 20) -> list[AuditEvent]:
    """The customer page's trail: what was done, without every look at it (each reload of
    that page is one); the full log has those too."""
    return page(Filters(customer_id=customer_id, without=READS), limit=limit).events


def last_staff_view(customer_id: str) -> datetime | None:
    """When staff last looked at this customer (console page, API read or impersonation)."""
    return db.session.execute(
        select(AuditEvent.created_at)
        .where(AuditEvent.customer_id == customer_id, AuditEvent.action.in_(VIEW_ACTIONS))
        .order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none()


def actions() -> list[str]:
    """Every action the audit log holds (for the filter). On PostgreSQL a skip scan of the
    action index (one probe per action, not a pass over millions of rows)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return list(db.session.execute(
            select(AuditEvent.action).distinct().order_by(AuditEvent.action)).scalars())
    return list(db.session.execute(text(
        "WITH RECURSIVE a(action) AS ("
        " (SELECT action FROM audit_events ORDER BY action LIMIT 1)"
        " UNION ALL SELECT (SELECT e.action FROM audit_events e WHERE e.action > a.action"
        "                   ORDER BY e.action LIMIT 1) FROM a WHERE a.action IS NOT NULL)"
        " SELECT action FROM a WHERE action IS NOT NULL")).scalars())


def staff_users() -> list[User]:
    """Every staff user (for the filter)."""
    return list(db.session.execute(
        select(User).where(User.role == ROLE_STAFF).order_by(User.email)).scalars())


# CSV export ------------------------------------------------------------------------

CSV_COLUMNS = ("id", "created_at", "staff_email", "staff_user_id", "impersonated_user_id",
               "customer_id", "account_id", "action", "reason", "via", "ip", "user_agent",
               "before", "after", "meta")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    # A spreadsheet would run a cell starting with = + - @ as a formula: neutralise it.
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_lines(filters: Filters, batch: int = 500) -> Iterator[str]:
    """The whole filtered log as CSV, newest first, read in batches (never all in memory)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    before: int | None = None
    while True:
        q = filters.query()
        if before is not None:
            q = q.where(AuditEvent.id < before)
        rows = list(db.session.execute(q.order_by(AuditEvent.id.desc()).limit(batch)).scalars())
        if not rows:
            return
        for row in rows:
            writer.writerow([_cell(getattr(row, column)) for column in CSV_COLUMNS])
        yield flush()
        before = rows[-1].id
        db.session.expunge_all()  # keep memory flat on a long export
