"""Top-ups: every PaymentIntent Tally creates, so a confirm for any other id is refused
before a network call."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, UTCDateTime, utcnow


class TopUp(Model):
    __tablename__ = "top_ups"

    payment_intent_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), default="requires_payment_method")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
