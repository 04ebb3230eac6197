"""The append-only ledger: the balance is the sum of these entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigIntPK, Model, UTCDateTime, utcnow

KIND_TOPUP = "topup"
KIND_GRANT = "grant"
KIND_USAGE = "usage"
KIND_REFUND = "refund"
KIND_ADJUSTMENT = "adjustment"
KIND_EXPIRY = "expiry"
KINDS = (KIND_TOPUP, KIND_GRANT, KIND_USAGE, KIND_REFUND, KIND_ADJUSTMENT, KIND_EXPIRY)
# What a person reads beside an entry.
KIND_LABELS = {KIND_TOPUP: "Top-up", KIND_GRANT: "Credit", KIND_USAGE: "Usage",
               KIND_REFUND: "Refund", KIND_ADJUSTMENT: "Adjustment", KIND_EXPIRY: "Expired"}


class LedgerEntry(Model):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        # Every external cause (a PaymentIntent, a grant, a usage day) lands once.
        UniqueConstraint("kind", "source", "source_id", name="uq_ledger_entries_cause"),
        Index("ix_ledger_entries_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed, minor units
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
