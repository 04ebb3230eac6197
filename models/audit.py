"""The staff audit log (append-only) and impersonation sessions.

`AuditEvent` rows are only ever inserted: the app has no update or delete path, the ORM
refuses one (below), and the database refuses one too (triggers created with the
table on SQLite and PostgreSQL, and by the migrations; on PostgreSQL TRUNCATE too). The
app may also run as a role that can only read and insert here (models/roles.py).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import DDL, JSON, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, relationship

from models.accounts import Customer, User
from models.base import BigIntPK, Model, UTCDateTime, public_id, utcnow

VIA_CONSOLE = "console"  # a staff page
VIA_API = "api"  # a staff API key
VIA_IMPERSONATION = "impersonation"  # a customer page, viewed as the customer
VIA_CLI = "cli"  # a flask command on the server
VIA_MEMBER = "member"  # a customer's member on their own pages (named in meta.by)


class AuditEvent(Model):
    """Who (staff), as whom (customer user), what, when, from where, before and after."""

    __tablename__ = "audit_events"
    # The log is read newest first by id (keyset pages, services/staff/audit.py): each filter
    # has an index ending in id, so a page at any depth is an index range scan.
    __table_args__ = (
        Index("ix_audit_events_customer_id", "customer_id", "id"),
        Index("ix_audit_events_staff_id", "staff_user_id", "id"),
        Index("ix_audit_events_action_id", "action", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The true user: the staff member, even while viewing as a customer (None: the CLI).
    staff_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    staff_email: Mapped[str] = mapped_column(String(320), default="")  # as it was then
    # The customer user the staff member was viewing as, if any.
    impersonated_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    action: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    via: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    impersonated: Mapped[User | None] = relationship(foreign_keys=[impersonated_user_id],
                                                     viewonly=True)
    customer: Mapped[Customer | None] = relationship(viewonly=True)


class Impersonation(Model):
    """One "view as customer" session. The browser session holds only its id, so Stop and
    expiry are decided here, not by a cookie."""

    __tablename__ = "impersonations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "imp"))
    staff_user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(16))  # stopped | expired


class AuditLogIsAppendOnly(RuntimeError):
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_change(mapper: Any, connection: Any, target: Any) -> None:
    raise AuditLogIsAppendOnly("audit_events is append-only")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) == AuditEvent.__tablename__:
            raise AuditLogIsAppendOnly("audit_events is append-only")


# The same rule in the database, for anything that bypasses the ORM. The migration
# creates the same triggers.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
)
POSTGRESQL_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    # TRUNCATE removes rows without a row trigger firing: a statement trigger refuses it.
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)
for _sql in SQLITE_TRIGGERS:
    event.listen(AuditEvent.__table__, "after_create", DDL(_sql).execute_if(dialect="sqlite"))
for _sql in POSTGRESQL_TRIGGERS:
    event.listen(AuditEvent.__table__, "after_create", DDL(_sql).execute_if(dialect="postgresql"))
