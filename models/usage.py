"""Usage metering: meters, raw events (deduplicated by id, kept TALLY_EVENT_RETENTION_DAYS),
and the pre-aggregates that limit checks and usage views read instead of raw events."""

from __future__ import annotations

import re
from datetime import UTC, datetime
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
    """A usage event as received: an append-only log, kept TALLY_EVENT_RETENTION_DAYS.

    On PostgreSQL the table is partitioned by month of `received_at` (the server's clock,
    so the partitions to come are known), with a DEFAULT partition so an insert never
    fails; services/usage/retention.py creates months ahead and drops expired ones. It has
    no key of its own (a partitioned table's unique index must hold the partition key, and
    nothing reads a raw event by key): `usage_event_ids` is what deduplicates. SQLite keeps
    a plain table.
    """

    __tablename__ = "usage_events"
    __table_args__ = {"postgresql_partition_by": "RANGE (received_at)"}

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_name: Mapped[str] = mapped_column(String(100))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # The ORM's identity for a row (unique: one raw event per recorded id); no constraint.
    __mapper_args__ = {"primary_key": [account_id, event_id, received_at]}


class UsageEventId(Model):
    """The dedupe record: an event id recorded for an account, and when it was received.

    Recording inserts here first (ON CONFLICT DO NOTHING) and stores and counts only the
    ids that were new. Rows go when their raw events go (the retention job), so an id is
    deduplicated for as long as its raw event is kept.
    """

    __tablename__ = "usage_event_ids"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


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


# PostgreSQL's monthly partitions of usage_events ---------------------------------------

EVENT_PARTITIONS_AHEAD = 3  # months created beyond the current one
EVENT_DEFAULT_PARTITION = "usage_events_default"
_EVENT_PARTITION = re.compile(r"^usage_events_p(\d{4})(\d{2})$")


def month_start(at: datetime) -> datetime:
    """The first instant (UTC) of the month `at` falls in."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def event_partition(start: datetime) -> str:
    """The name of the partition holding events received in the month starting `start`."""
    return f"usage_events_p{start.year:04d}{start.month:02d}"


def event_partition_month(name: str) -> datetime | None:
    """The month a partition's name stands for (None: not a monthly partition)."""
    found = _EVENT_PARTITION.match(name)
    return datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC) if found else None


def is_event_partition(name: str) -> bool:
    """A partition of usage_events: made by the retention job, not by the models (so the
    migrations' comparison with the models leaves them out)."""
    return name == EVENT_DEFAULT_PARTITION or event_partition_month(name) is not None


def event_partition_ddl(start: datetime) -> str:
    end = add_months(start, 1)
    return (f"CREATE TABLE IF NOT EXISTS {event_partition(start)} PARTITION OF usage_events "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")


@event.listens_for(UsageEvent.__table__, "after_create")
def _create_event_partitions(table: Any, connection: Any, **kw: Any) -> None:
    """PostgreSQL: the DEFAULT partition, this month's and the next ones (create_all;
    migrations make their own)."""
    if connection.dialect.name != "postgresql":
        return
    connection.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {EVENT_DEFAULT_PARTITION} "
                               "PARTITION OF usage_events DEFAULT")
    this_month = month_start(utcnow())
    for n in range(EVENT_PARTITIONS_AHEAD + 1):
        connection.exec_driver_sql(event_partition_ddl(add_months(this_month, n)))
