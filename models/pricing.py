"""Price plans (usage-based pricing per meter) and the charges rated from usage."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Model, UTCDateTime, public_id, utcnow

PRICING_MODELS = ("per_unit", "graduated", "volume", "package")


class PricePlan(Model):
    __tablename__ = "price_plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "pp"))
    name: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    charges: Mapped[list[PriceCharge]] = relationship(order_by="PriceCharge.id")


class PriceCharge(Model):
    """How one meter is priced: `model` over the units beyond `included_units` in a period."""

    __tablename__ = "price_charges"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "pc"))
    price_plan_id: Mapped[str] = mapped_column(ForeignKey("price_plans.id"), index=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"))
    model: Mapped[str] = mapped_column(String(16))
    unit_amount: Mapped[int | None] = mapped_column(BigInteger)  # per_unit
    package_size: Mapped[int | None] = mapped_column(BigInteger)  # package
    package_amount: Mapped[int | None] = mapped_column(BigInteger)  # package
    # graduated / volume: [{"up_to": int | None, "unit_amount": int, "flat_amount": int}]
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    included_units: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageCharge(Model):
    """Rated usage of one meter on one local day, accrued as usage arrives.

    `amount` is what the day has cost so far; `posted` is how much of it is on the
    ledger. Closed days are posted as one ledger entry per meter per day.
    """

    __tablename__ = "usage_charges"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # local midnight, as UTC
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    posted: Mapped[int] = mapped_column(BigInteger, default=0)
