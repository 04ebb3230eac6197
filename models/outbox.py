"""The outbox: work that must follow a commit (an email, a charge), written in the same
transaction as its cause and delivered after the commit, with retries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigIntPK, Model, UTCDateTime, utcnow

PENDING = "pending"  # waiting for its first or next attempt
SENT = "sent"  # delivered
FAILED = "failed"  # gave up after the last attempt


class OutboxMessage(Model):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "available_at"),
        Index("ix_outbox_messages_customer", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))  # which handler delivers it, e.g. "email"
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The same cause queued twice (a retried operation) is delivered once.
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The next attempt is due then; a claimed message is pushed ahead by its lease.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
