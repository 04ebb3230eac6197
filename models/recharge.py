"""Auto-recharge: an account's settings and state, and every attempt it made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigIntPK, Model, UTCDateTime, utcnow

IDLE = "idle"  # waiting for credit to fall below the threshold
CHARGING = "charging"  # one attempt in flight (claimed by a conditional UPDATE)
REQUIRES_ACTION = "requires_action"  # the bank asked for 3-D Secure: the customer completes it
DISABLED = "disabled"  # off (by the customer, or by itself after 3 failures)
STATUSES = (IDLE, CHARGING, REQUIRES_ACTION, DISABLED)

FIXED = "fixed"  # add `amount`
TARGET = "target"  # bring available credit up to `target`
METHODS = (FIXED, TARGET)

# Outcomes of an attempt
PENDING = "pending"
SUCCEEDED = "succeeded"
DECLINED = "declined"
NEEDS_AUTHENTICATION = "requires_action"
OVER_MONTHLY_LIMIT = "monthly_limit"
NO_CARD = "no_card"
NOT_NEEDED = "not_needed"


class AutoRecharge(Model):
    __tablename__ = "auto_recharges"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    threshold: Mapped[int] = mapped_column(BigInteger, default=0)
    method: Mapped[str] = mapped_column(String(16), default=FIXED)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    target: Mapped[int | None] = mapped_column(BigInteger)
    payment_method_id: Mapped[str | None] = mapped_column(String(255))  # None: the default card
    monthly_limit: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=DISABLED)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    # The number of the last attempt claimed; each attempt's Stripe idempotency key derives
    # from it, so a redelivered attempt makes the same charge and a new one a new charge.
    attempt_seq: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # no new attempt before
    # With requires_action: the PaymentIntent the customer can complete on the page.
    pending_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RechargeAttempt(Model):
    __tablename__ = "recharge_attempts"
    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="uq_recharge_attempts_seq"),
        Index("ix_recharge_attempts_account", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    seq: Mapped[int] = mapped_column()
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(32), default=PENDING)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
