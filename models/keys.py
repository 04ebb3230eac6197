"""API keys: stored as a SHA-256 hash and a display prefix, never in the clear."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Model, UTCDateTime, public_id, utcnow

if TYPE_CHECKING:
    from models.accounts import Account

KIND_ACCOUNT = "account"  # full access to its account
KIND_USAGE = "usage"  # a product server's key: authorize, events, read balance and usage
KIND_STAFF = "staff"  # a support-staff user's key


class ApiKey(Model):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "key"))
    kind: Mapped[str] = mapped_column(String(16), default=KIND_ACCOUNT)
    name: Mapped[str] = mapped_column(String(100), default="Default key")
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by_id: Mapped[str | None] = mapped_column(String(32))

    account: Mapped[Account | None] = relationship()  # None for staff keys

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
