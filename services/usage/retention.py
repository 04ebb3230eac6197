"""How long raw usage events (and the ids that deduplicate them) are kept.

Raw events are kept TALLY_EVENT_RETENTION_DAYS, then removed a whole calendar month
(UTC, by `received_at`) at a time: a month goes once its last instant is older than the
retention. On PostgreSQL a month is a partition of usage_events, dropped whole (no
DELETE, no bloat, no VACUUM); rows in the DEFAULT partition (there only if the job did
not run for months) and SQLite's plain table are deleted in batches. The ids of those
months (usage_event_ids) are deleted in batches too, so an id is deduplicated exactly as
long as its raw event is kept. Rollups, counters and distinct values are never touched:
every page, limit and invoice reads those.

Each step is one unit of work for interfaces/jobs.py. Partition changes take a
transaction-level advisory lock and look again under it, so two runs at once (or on
two machines) do each change once; batched deletes skip rows another run holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, select, text, tuple_

from config import DEFAULT_EVENT_RETENTION_DAYS
from extensions import db
from models import UsageEventId
from models.base import UTCDateTime
from models.usage import (
    EVENT_DEFAULT_PARTITION,
    EVENT_PARTITIONS_AHEAD,
    add_months,
    event_partition,
    event_partition_ddl,
    event_partition_month,
    month_start,
)
from services import uow
from services.usage.events import MAX_AGE
from services.usage.store import dialect

BATCH = 5000
_LOCK = 7_105_015_019  # pg_advisory_xact_lock key of partition changes ("usage events")
# An ACCESS EXCLUSIVE lock on usage_events (a partition dropped or attached) waits for the
# inserts under way; past this, the step fails rather than hold ingestion up (rerun it).
_LOCK_TIMEOUT = "10s"


def retention_days() -> int:
    """TALLY_EVENT_RETENTION_DAYS: longer than the oldest event accepted (MAX_AGE), so a
    retried event is always still known when it comes back."""
    days = int(current_app.config.get("EVENT_RETENTION_DAYS", DEFAULT_EVENT_RETENTION_DAYS))
    if days <= MAX_AGE.days:
        raise RuntimeError(f"TALLY_EVENT_RETENTION_DAYS must be more than {MAX_AGE.days} "
                           f"(events up to {MAX_AGE.days} days old are accepted), got {days}")
    return days


def cutoff(now: datetime, days: int) -> datetime:
    """Events received before this instant are removed: the start of the month in which
    the retention ends (whole months go, so nothing younger than `days` is removed)."""
    return month_start(now - timedelta(days=days))


def _lock() -> None:
    db.session.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})


def partitions() -> dict[str, datetime | None]:
    """PostgreSQL: usage_events' partitions, by name: the month each holds (None: the
    DEFAULT one)."""
    names = db.session.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'usage_events'::regclass")).scalars()
    return {name: event_partition_month(name) for name in names}


def months_to_create(now: datetime) -> list[datetime]:
    """This month and the next EVENT_PARTITIONS_AHEAD ones."""
    this_month = month_start(now)
    return [add_months(this_month, n) for n in range(EVENT_PARTITIONS_AHEAD + 1)]


def create_month(start: datetime) -> bool:
    """PostgreSQL, one unit: the partition for the month beginning `start`, unless it is
    there; False when it was. Rows of that month already in the DEFAULT partition (the
    job did not run in time) move into it."""
    _lock()
    name = event_partition(start)
    if name in partitions():
        return False
    end = add_months(start, 1)
    bounds = {"start": start, "end": end}
    in_month = "received_at >= :start AND received_at < :end"
    default_rows = db.session.execute(text(
        f"SELECT 1 FROM {EVENT_DEFAULT_PARTITION} WHERE {in_month} LIMIT 1"), bounds).first()
    if default_rows is None:
        db.session.execute(text(event_partition_ddl(start)))
        return True
    # A partition whose range has rows in DEFAULT cannot be created in place: build it
    # beside, move the rows (no insert can reach DEFAULT meanwhile), then attach it.
    db.session.execute(text(f"LOCK TABLE {EVENT_DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"))
    db.session.execute(text(f"CREATE TABLE {name} (LIKE usage_events INCLUDING DEFAULTS)"))
    db.session.execute(text(
        f"WITH moved AS (DELETE FROM {EVENT_DEFAULT_PARTITION} WHERE {in_month} RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved"), bounds)
    db.session.execute(text(
        f"ALTER TABLE usage_events ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
    return True


def expired_months(before: datetime) -> list[str]:
    """PostgreSQL: the monthly partitions wholly before `before`, oldest first."""
    return sorted(name for name, start in partitions().items()
                  if start is not None and add_months(start, 1) <= before)


def drop_month(name: str, before: datetime) -> bool:
    """PostgreSQL, one unit: drop an expired monthly partition (with its rows); False
    when another run dropped it first."""
    _lock()
    start = partitions().get(name)
    if start is None or add_months(start, 1) > before:
        return False
    db.session.execute(text(f"ALTER TABLE usage_events DETACH PARTITION {name}"))
    db.session.execute(text(f"DROP TABLE {name}"))
    return True


def delete_events(before: datetime, limit: int = BATCH) -> int:
    """One unit: delete up to `limit` raw events received before `before`, from SQLite's
    table or PostgreSQL's DEFAULT partition (the monthly ones are dropped whole)."""
    table, row = (("usage_events", "rowid") if dialect() != "postgresql"
                  else (EVENT_DEFAULT_PARTITION, "ctid"))
    lock = " FOR UPDATE SKIP LOCKED" if dialect() == "postgresql" else ""
    rows = f"SELECT {row} FROM {table} WHERE received_at < :before LIMIT :limit{lock}"
    match = f"= ANY(ARRAY({rows}))" if dialect() == "postgresql" else f"IN ({rows})"
    return int(uow.rows_changed(text(f"DELETE FROM {table} WHERE {row} {match}").bindparams(
        bindparam("before", before, type_=UTCDateTime), bindparam("limit", limit))))


def delete_ids(before: datetime, limit: int = BATCH) -> int:
    """One unit: forget up to `limit` event ids received before `before` (their raw
    events are gone), oldest first, skipping rows another run holds."""
    key = tuple_(UsageEventId.account_id, UsageEventId.event_id)
    old = (select(UsageEventId.account_id, UsageEventId.event_id)
           .where(UsageEventId.received_at < before).order_by(UsageEventId.received_at)
           .limit(limit).with_for_update(skip_locked=True))
    return int(uow.rows_changed(delete(UsageEventId).where(key.in_(old))))
