"""Credit grants: free credit given by staff, possibly starting later and expiring.

A grant reaches the ledger once (kind `grant`, source `credit_grant`, source_id = its
id) when it becomes effective; what is left of it when it expires leaves once (kind
`expiry`, same source and id).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, UTCDateTime, public_id, utcnow


class CreditGrant(Model):
    __tablename__ = "credit_grants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "grant"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units, > 0
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)  # why, for the audit log (staff only)
    note: Mapped[str | None] = mapped_column(Text)  # what the customer reads, if anything
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    granted_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # on the ledger since
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_amount: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def status(self) -> str:
        if self.expired_at is not None:
            return "expired"
        return "active" if self.posted_at is not None else "scheduled"
