"""Wallets linked to accounts (ChainSecured auth), and the signed messages already used."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Model, UTCDateTime, utcnow


class WalletLink(Model):
    """An Ethereum address that may act as an account key of one account. The address is
    stored in lower case (the primary key: a wallet belongs to one account at most)."""

    __tablename__ = "wallet_links"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsedWalletSignature(Model):
    """An EIP-712 message whose signature authorized a state-changing request (or linked a
    wallet): the primary key refuses a second use, whichever worker sees it. Rows older than
    the accepted clock window can be deleted (`purge-idempotency-keys` does)."""

    __tablename__ = "used_wallet_signatures"
    __table_args__ = (Index("ix_used_wallet_signatures_used_at", "used_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex EIP-712 digest
    address: Mapped[str] = mapped_column(String(42))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
