"""Who works in a customer, with which role; invitations; and each login's session.

A person (`User`) may belong to several customers, each through one `Membership` with a
role (services/identity/members.py says what each role may do). `User.customer_id` is the
customer the person works in now (the header's switcher changes it).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.accounts import Customer, User
from models.base import Model, UTCDateTime, public_id, utcnow

ROLE_OWNER = "owner"
ROLE_ADMIN = "admin"
ROLE_BILLING = "billing"
ROLE_DEVELOPER = "developer"
ROLE_VIEWER = "viewer"
MEMBER_ROLES = (ROLE_OWNER, ROLE_ADMIN, ROLE_BILLING, ROLE_DEVELOPER, ROLE_VIEWER)


class Membership(Model):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("customer_id", "user_id", name="uq_memberships_customer_user"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "mem"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship()
    user: Mapped[User] = relationship()


class Invitation(Model):
    """An invitation by email to join a customer with a role; its link works once."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "inv"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    invited_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship()
    invited_by: Mapped[User | None] = relationship()

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()


class UserSession(Model):
    """One logged-in browser: the session cookie names it; ending it logs that browser out."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "sess", 24))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
