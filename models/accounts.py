"""Customers (the billing entity), their accounts, and the people who log in."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from flask_login import UserMixin
from sqlalchemy import DDL, JSON, BigInteger, ForeignKey, Index, String, event, false
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Model, UTCDateTime, public_id, utcnow

ROLE_CUSTOMER = "customer"
ROLE_STAFF = "staff"


class Customer(Model):
    __tablename__ = "customers"
    # Newest first: the console's list and every search lookup (services/staff/search.py).
    __table_args__ = (Index("ix_customers_created_at", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "cust"))
    name: Mapped[str] = mapped_column(String(200))
    primary_email: Mapped[str] = mapped_column(String(320))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Where invoices are addressed, in Togai's shape ({addressLine1, addressLine2, city,
    # state, zipCode, country}); copied onto each invoice as it is issued.
    billing_address: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # The last invoice number issued to this customer; bumped under a row lock so
    # numbers have no gaps (services/billing/invoices.py).
    invoice_seq: Mapped[int] = mapped_column(default=0)
    # Set by an owner: every member must use two-factor authentication to log in.
    require_two_factor: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    accounts: Mapped[list[Account]] = relationship(
        back_populates="customer", order_by="Account.created_at"
    )


class Account(Model):
    """What is billed and limited: tier, currency, prepaid balance, keys."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "acct"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(32), default="free")
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    # Cache of SUM(ledger_entries.amount); written only by services.ledger.post_entry,
    # under a row lock, in the same transaction as the entry.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Billing periods are calendar months in this IANA time zone.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Monthly cap on priced usage in minor units (None = no cap), and alert thresholds
    # in percent of each limit.
    spend_cap: Mapped[int | None] = mapped_column(BigInteger)
    alert_thresholds: Mapped[list[int]] = mapped_column(JSON, default=lambda: [80, 100])
    # Usage-based pricing: the price plan, and rated usage accrued but not yet on the
    # ledger (the credit available to spend is balance - pending_usage).
    price_plan_id: Mapped[str | None] = mapped_column(ForeignKey("price_plans.id"))
    pending_usage: Mapped[int] = mapped_column(BigInteger, default=0)
    # Notifications: which kinds the customer turned off ({kind: false}; security notices
    # always go), and the low-balance notice's threshold (None: off) and whether it has
    # been sent since credit last fell below it (once per crossing).
    notification_prefs: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict,
                                                                 server_default="{}")
    low_balance_threshold: Mapped[int | None] = mapped_column(BigInteger)
    low_balance_notified: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Set when a renewal fails (past_due); the paid plan ends when it passes.
    grace_period_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="accounts")

    @hybrid_property
    def available_balance(self) -> int:
        """Credit the customer can spend: the ledger balance less usage rated but not yet
        posted (it is posted per meter per day). The one definition, in Python and SQL."""
        return self.balance - self.pending_usage


class User(UserMixin, Model):
    """A person who logs in: a customer user (belongs to a customer) or staff (to none)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "usr"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=ROLE_CUSTOMER, index=True)  # staff: few
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    # Part of every session's identity (see get_id): bumped at logout and at a password
    # change, which ends every session signed in before, on every device.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # When the email was proven (a link sent to it was opened); None: not yet.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A new address asked for, until its verification link is opened.
    pending_email: Mapped[str | None] = mapped_column(String(320))
    # TOTP two-factor: the secret (encrypted, services/identity/two_factor.py), when it was
    # turned on, and the hashes of the unused recovery codes.
    totp_secret: Mapped[str | None] = mapped_column(String(300))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The 30-second step of the last code that was accepted: no code of it or before works again.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    recovery_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer | None] = relationship()

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def two_factor_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def is_staff(self) -> bool:
        return self.role == ROLE_STAFF

    def get_id(self) -> str:
        """What the session cookie holds (Flask-Login): the id and the session version."""
        return f"{self.id}.{self.session_version or 0}"



# Staff search (services/staff/search.py) reads models/search.py's table, whose trigram
# index needs pg_trgm: it ships with PostgreSQL and is a trusted extension (a database
# owner may create it).
event.listen(Model.metadata, "before_create",
             DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"))
