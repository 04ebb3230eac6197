"""Idempotency keys of `/v1` POSTs: one row per (owner, key), holding the first response."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigIntPK, Model, UTCDateTime, utcnow


class IdempotencyRecord(Model):
    """Inserted (and committed) before the request runs; the unique constraint decides which
    of two concurrent requests with the same key runs. `status` stays NULL while it runs."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("owner", "key", name="uq_idempotency_keys_owner_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # The credential scope: "account:<id>:account_key", "account:<id>:usage_key",
    # "user:<id>:staff_key", or "user:<id>:session" for the pages.
    owner: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and body
    status: Mapped[int | None] = mapped_column()
    body: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(2000))  # a page's redirect, replayed too
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
