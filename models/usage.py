"""Usage metering: meters, raw events (deduplicated by id), and the pre-aggregates that
limit checks and usage views read instead of raw events."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigIntPK, Model, UTCDateTime, public_id, utcnow

AGGREGATIONS = ("count", "sum", "max", "unique_count", "latest")
# The meters every Tally has (name, event_name, aggregation, property, unit): created with
# the table (below, and by migration 6d2a1c0e9b41), so reading meters never writes.
DEFAULT_METERS = (
    ("apiCalls", "api_call", "count", None, "calls"),
    ("llmTokens", "llm_completion", "sum", "tokens", "tokens"),
    ("storage", "storage_usage", "latest", "bytes", "bytes"),
)


class Meter(Model):
    """What to measure: `aggregation` of `property` over events named `event_name`."""

    __tablename__ = "meters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=partial(public_id, "mtr"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    event_name: Mapped[str] = mapped_column(String(100), index=True)
    aggregation: Mapped[str] = mapped_column(String(16))
    property: Mapped[str | None] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageEvent(Model):
    """A usage event as received. `event_id` is the caller's idempotency key, kept forever."""

    __tablename__ = "usage_events"
    __table_args__ = (UniqueConstraint("account_id", "event_id", name="uq_usage_events_account_event"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_name: Mapped[str] = mapped_column(String(100))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsageRollup(Model):
    """One meter's usage in one local hour of the account (`bucket_start` is its UTC instant).

    Hours are floored in the account's time zone, so local days and months (even in
    half-hour zones) are exact unions of buckets.
    """

    __tablename__ = "usage_rollups"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    latest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsageCounter(Model):
    """One meter's usage in one billing period (`period_start`), or all-time (LIFETIME).

    The gate checks limits with one conditional UPDATE of this row.
    """

    __tablename__ = "usage_counters"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    latest_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsageUnique(Model):
    """Distinct values seen by a `unique_count` meter, per hour bucket and per period."""

    __tablename__ = "usage_uniques"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    scope_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # "hour" | "period"
    value_hash: Mapped[str] = mapped_column(String(64), primary_key=True)


class UsageAlert(Model):
    """A threshold crossed, recorded once per account, meter, threshold, period and limit
    (a plan change in the period brings a new limit, whose thresholds count afresh)."""

    __tablename__ = "usage_alerts"
    __table_args__ = (
        UniqueConstraint("account_id", "meter_id", "threshold", "period_start", "limit",
                         name="uq_usage_alerts_once"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"))
    threshold: Mapped[int] = mapped_column()  # percent of the limit
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[int] = mapped_column(BigInteger)
    limit: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def default_meter_rows() -> list[dict[str, Any]]:
    return [{"id": public_id("mtr"), "name": name, "event_name": event_name,
             "aggregation": aggregation, "property": prop, "unit": unit, "created_at": utcnow()}
            for name, event_name, aggregation, prop, unit in DEFAULT_METERS]


@event.listens_for(Meter.__table__, "after_create")
def _create_default_meters(table: Any, connection: Any, **kw: Any) -> None:
    connection.execute(table.insert(), default_meter_rows())
