"""Usage ingestion, the request gate, and usage reads.

Events are deduplicated by `(account, event id)` with INSERT ... ON CONFLICT DO NOTHING;
only the new ones update the pre-aggregates in the same transaction:
`usage_rollups` (per local hour, for series) and `usage_counters` (per billing period
and all-time, for limits and summaries). Limit checks and usage views read those,
never raw events.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import Account, Meter, UsageAlert, UsageCounter, UsageEvent, UsageRollup, UsageUnique
from models.base import utcnow
from services import meters as meter_defs
from services import periods, plans
from services.errors import InvalidInput, TallyError
from services.meters import Contribution, Rejected

MAX_BATCH = 1000
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)


class UsageLimitExceeded(TallyError):
    status, title, code = 402, "Usage limit exceeded", "usage_limit_exceeded"

    def __init__(self, meter: Meter, current: int, limit: int, *, lifetime: bool = False) -> None:
        scope = "lifetime limit reached" if lifetime else "limit reached for current period"
        super().__init__(f"{meter_defs.label(meter)} {scope}",
                         extra={"usage": {"current": current, "limit": limit}})


# Parsing ----------------------------------------------------------------------


@dataclass
class EventIn:
    index: int
    id: str
    event_name: str
    timestamp: datetime
    properties: dict[str, Any]


def parse_timestamp(value: object, param: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput("timestamp must be an RFC 3339 string such as 2026-11-23T10:00:00Z.",
                           param=param)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{value!r} is not an RFC 3339 timestamp.", param=param) from None
    if parsed.tzinfo is None:
        raise InvalidInput("timestamp needs a time zone offset (Z or +hh:mm).", param=param)
    return parsed.astimezone(UTC)


def parse_event(raw: object, index: int | None, now: datetime) -> EventIn:
    """One event's shape; a fault here is a 400 for the whole request."""
    where = "" if index is None else f"events[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput("Each event must be a JSON object.", param=where.rstrip(".") or "body")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise InvalidInput("id must be a string of 1 to 255 characters (your idempotency key).",
                           param=f"{where}id")
    name = raw.get("event_name")
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise InvalidInput("event_name must be a string of 1 to 100 characters.",
                           param=f"{where}event_name")
    properties = raw.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidInput("properties must be a JSON object.", param=f"{where}properties")
    timestamp = now if raw.get("timestamp") is None else parse_timestamp(
        raw["timestamp"], f"{where}timestamp")
    return EventIn(index or 0, event_id, name, timestamp, properties)


def parse_batch(body: object, now: datetime) -> list[EventIn]:
    """`{"events": [...]}` (1 to 1,000) or one event object."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object: one event or {\"events\": [...]}.")
    if "events" in body:
        events = body["events"]
        if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
            raise InvalidInput(f"events must be a list of 1 to {MAX_BATCH:,} events.", param="events")
        return [parse_event(raw, i, now) for i, raw in enumerate(events)]
    return [parse_event(body, None, now)]


# Recording --------------------------------------------------------------------


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _insert(model: type) -> Any:
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _greatest(a: Any, b: Any) -> Any:
    dialect = db.session.get_bind().dialect.name
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


def _insert_events(account_id: str, events: list[EventIn]) -> set[str]:
    """Insert; return the ids that were new (the rest were recorded before)."""
    if not events:
        return set()
    now = utcnow()
    rows = [{"account_id": account_id, "event_id": e.id, "event_name": e.event_name,
             "timestamp": e.timestamp, "properties": e.properties, "received_at": now}
            for e in events]
    stmt = (_insert(UsageEvent).on_conflict_do_nothing(index_elements=["account_id", "event_id"])
            .returning(UsageEvent.event_id))
    return set(db.session.execute(stmt, rows).scalars())


@dataclass
class _Cell:
    value: int = 0
    events: int = 0
    latest_at: datetime | None = None


def _accumulate(cells: dict[tuple, _Cell], key: tuple, c: Contribution, at: datetime) -> None:
    cell = cells.setdefault(key, _Cell())
    agg = c.meter.aggregation
    cell.events += 1
    if agg in ("count", "sum", "unique_count"):
        cell.value += c.value
    elif agg == "max":
        cell.value = max(cell.value, c.value)
    elif agg == "latest" and (cell.latest_at is None or at >= cell.latest_at):
        cell.value, cell.latest_at = c.value, at


def _upsert(model: type, keys: tuple[str, ...], aggregation: str,
            rows: list[dict[str, Any]]) -> None:
    """Merge pre-aggregated rows into rollups or counters, by aggregation."""
    if not rows:
        return
    rows.sort(key=lambda r: tuple(str(r[k]) for k in keys))  # one lock order: no deadlocks
    stmt = _insert(model).values(rows)
    table, new = model.__table__.c, stmt.excluded
    if aggregation in ("count", "sum", "unique_count"):
        value = table.value + new.value
    elif aggregation == "max":
        value = _greatest(table.value, new.value)
    else:  # latest
        value = case((new.latest_at >= table.latest_at, new.value), else_=table.value)
    set_: dict[str, Any] = {"value": value}
    if "events" in table:
        set_["events"] = table.events + new.events
    if aggregation == "latest":
        set_["latest_at"] = _greatest(table.latest_at, new.latest_at)
    db.session.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=set_))


def _new_uniques(account_id: str, rows: list[tuple[str, datetime, str, str]]) -> set[tuple]:
    """Insert distinct values; return the (meter, scope_start, scope, hash) that were new."""
    if not rows:
        return set()
    stmt = (_insert(UsageUnique)
            .on_conflict_do_nothing()
            .returning(UsageUnique.meter_id, UsageUnique.scope_start, UsageUnique.scope,
                       UsageUnique.value_hash))
    params = [{"account_id": account_id, "meter_id": m, "scope_start": s, "scope": sc,
               "value_hash": h} for m, s, sc, h in sorted(set(rows))]
    return {tuple(r) for r in db.session.execute(stmt, params)}


def _record(account: Account, events: list[tuple[EventIn, list[Contribution]]],
            skip: frozenset[tuple[str, datetime]] = frozenset()) -> None:
    """Update rollups and counters for newly recorded events (caller commits).

    `skip` names counters (meter id, period start) the gate already moved.
    """
    tz = periods.zone(account.time_zone)
    hours: dict[tuple, _Cell] = {}
    months: dict[tuple, _Cell] = {}
    uniques: list[tuple[str, datetime, str, str]] = []
    for event, contribs in events:
        bucket = periods.hour_bucket(event.timestamp, tz)
        period = periods.month_of(event.timestamp, account.time_zone).start
        for c in contribs:
            if c.unique_hash:
                uniques += [(c.meter.id, bucket, "hour", c.unique_hash),
                            (c.meter.id, period, "period", c.unique_hash)]
                continue
            _accumulate(hours, (c.meter, bucket), c, event.timestamp)
            if (c.meter.id, period) not in skip:
                _accumulate(months, (c.meter, period), c, event.timestamp)
            if (c.meter.aggregation in ("count", "sum")
                    and (c.meter.id, periods.LIFETIME) not in skip):
                _accumulate(months, (c.meter, periods.LIFETIME), c, event.timestamp)
    for meter_id, start, scope, _ in _new_uniques(account.id, uniques):
        meter = next(c.meter for _, cs in events for c in cs if c.meter.id == meter_id)
        target = hours if scope == "hour" else months
        _accumulate(target, (meter, start), Contribution(meter, 1), start)

    by_agg: dict[str, list[dict]] = defaultdict(list)
    for (meter, start), cell in hours.items():
        by_agg[meter.aggregation].append({
            "account_id": account.id, "meter_id": meter.id, "bucket_start": start,
            "value": cell.value, "events": cell.events, "latest_at": cell.latest_at})
    for agg, rows in by_agg.items():
        _upsert(UsageRollup, ("account_id", "meter_id", "bucket_start"), agg, rows)
    by_agg.clear()
    for (meter, start), cell in months.items():
        by_agg[meter.aggregation].append({
            "account_id": account.id, "meter_id": meter.id, "period_start": start,
            "value": cell.value, "latest_at": cell.latest_at})
    for agg, rows in by_agg.items():
        _upsert(UsageCounter, ("account_id", "meter_id", "period_start"), agg, rows)


def ingest(account: Account, body: object, now: datetime | None = None) -> IngestResult:
    """Record a batch; a repeated id (in this batch or any earlier one) counts once."""
    now = now or utcnow()
    parsed = parse_batch(body, now)
    result = IngestResult()
    by_name: dict[str, list[Meter]] = defaultdict(list)
    for meter in meter_defs.all_meters():
        by_name[meter.event_name].append(meter)
    valid: list[tuple[EventIn, list[Contribution]]] = []
    seen: set[str] = set()
    for event in parsed:
        try:
            if event.timestamp < now - MAX_AGE:
                raise Rejected("timestamp_too_old", "Events older than 35 days are not accepted.")
            if event.timestamp > now + MAX_AHEAD:
                raise Rejected("timestamp_in_future",
                               "Events more than 5 minutes in the future are not accepted.")
            contribs = meter_defs.contributions(by_name.get(event.event_name, []), event.properties)
        except Rejected as rejection:
            result.rejected.append({"index": event.index, "id": event.id, "code": rejection.code,
                                    "message": rejection.message})
            continue
        if event.id in seen:
            result.duplicates += 1
            continue
        seen.add(event.id)
        valid.append((event, contribs))
    try:
        new_ids = _insert_events(account.id, [e for e, _ in valid])
        fresh = [(e, c) for e, c in valid if e.id in new_ids]
        _record(account, fresh)
        _raise_alerts(account, {c.meter for _, cs in fresh for c in cs}, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    result.accepted = len(fresh)
    result.duplicates += len(valid) - len(fresh)
    return result


# The gate ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    account_id: str
    tier: str
    current: int
    limit: int | None
    duplicate: bool = False

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.current, 0)


def _counter_value(account_id: str, meter_id: str, period_start: datetime) -> int:
    value = db.session.execute(select(UsageCounter.value).where(
        UsageCounter.account_id == account_id, UsageCounter.meter_id == meter_id,
        UsageCounter.period_start == period_start)).scalar_one_or_none()
    return int(value or 0)


def _take(account_id: str, meter: Meter, period_start: datetime, amount: int,
          limit: int) -> int | None:
    """Add `amount` to a counter only if it stays within `limit`; the new value or None.

    One conditional UPDATE: concurrent gate calls cannot both take the last unit.
    """
    db.session.execute(_insert(UsageCounter).values(
        account_id=account_id, meter_id=meter.id, period_start=period_start, value=0,
    ).on_conflict_do_nothing())
    return db.session.execute(
        update(UsageCounter)
        .where(UsageCounter.account_id == account_id, UsageCounter.meter_id == meter.id,
               UsageCounter.period_start == period_start,
               UsageCounter.value + amount <= limit)
        .values(value=UsageCounter.value + amount)
        .returning(UsageCounter.value)
    ).scalar_one_or_none()


def authorize(account: Account, body: dict[str, Any], now: datetime | None = None) -> Decision:
    """May this key make this call? Check limits and record the call, all at once.

    A refused call records nothing. A repeated request `id` is answered again, not counted.
    """
    now = now or utcnow()
    event_name = body.get("event_name", "api_call")
    quantity = body.get("quantity", 1)
    request_id = body.get("id") or f"auth_{uuid.uuid4().hex}"
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 10**9:
        raise InvalidInput("quantity must be a whole number from 1 to 1,000,000,000.",
                           param="quantity")
    properties = body.get("properties")
    properties = {} if properties is None else properties
    if not isinstance(properties, dict):
        raise InvalidInput("properties must be a JSON object.", param="properties")
    event = parse_event({"id": request_id, "event_name": event_name,
                         "properties": {**properties, "quantity": quantity}}, None, now)
    plan = plans.plan_for(account.tier)
    meters = meter_defs.meters_for_event(event.event_name)
    try:
        contribs = meter_defs.contributions(meters, event.properties)
    except Rejected as rejection:
        raise InvalidInput(rejection.message, code=rejection.code, param="properties") from None
    primary = contribs[0].meter if contribs else None
    period = periods.month_of(now, account.time_zone)
    taken: set[tuple[str, datetime]] = set()
    try:
        if not _insert_events(account.id, [event]):
            db.session.rollback()
            return _decision(account, plan, primary, period.start, duplicate=True)
        for c in contribs:
            if c.meter.aggregation not in ("count", "sum"):
                continue
            for start, limit_name, lifetime in (
                    (period.start, c.meter.name, False),
                    (periods.LIFETIME, meter_defs.lifetime_limit_name(c.meter.name), True)):
                limit = plan.limit(limit_name)
                if limit is None:
                    continue
                if _take(account.id, c.meter, start, c.value, limit) is None:
                    db.session.rollback()
                    raise UsageLimitExceeded(c.meter, _counter_value(account.id, c.meter.id, start),
                                             limit, lifetime=lifetime)
                taken.add((c.meter.id, start))
        _record(account, [(event, contribs)], skip=frozenset(taken))
        _raise_alerts(account, {c.meter for c in contribs}, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return _decision(account, plan, primary, period.start)


def _decision(account: Account, plan: plans.Plan, meter: Meter | None, period_start: datetime,
              duplicate: bool = False) -> Decision:
    if meter is None:
        return Decision(account.id, account.tier, 0, None, duplicate)
    return Decision(account.id, account.tier, _counter_value(account.id, meter.id, period_start),
                    plan.limit(meter.name), duplicate)


# Alerts -----------------------------------------------------------------------


def _raise_alerts(account: Account, meters: set[Meter], now: datetime) -> None:
    """Record each threshold crossed this period, once (the unique constraint decides)."""
    plan = plans.plan_for(account.tier)
    period = periods.month_of(now, account.time_zone)
    rows = []
    for meter in meters:
        limit = plan.limit(meter.name)
        if not limit:
            continue
        value = _counter_value(account.id, meter.id, period.start)
        for threshold in sorted(set(account.alert_thresholds or [])):
            if value * 100 >= limit * threshold:
                rows.append({"account_id": account.id, "meter_id": meter.id, "threshold": threshold,
                             "period_start": period.start, "value": value, "limit": limit,
                             "created_at": now})
    if rows:
        db.session.execute(_insert(UsageAlert).on_conflict_do_nothing(), rows)


def alerts(account: Account, now: datetime | None = None) -> list[tuple[UsageAlert, Meter]]:
    period = periods.month_of(now or utcnow(), account.time_zone)
    return list(db.session.execute(
        select(UsageAlert, Meter).join(Meter, Meter.id == UsageAlert.meter_id)
        .where(UsageAlert.account_id == account.id, UsageAlert.period_start == period.start)
        .order_by(UsageAlert.threshold.desc(), UsageAlert.created_at.desc())).all())


# Reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterUsage:
    meter: Meter
    current: int
    limit: int | None

    @property
    def percent(self) -> float | None:
        if self.limit is None:
            return None
        return 100.0 if self.limit == 0 else min(self.current * 100 / self.limit, 999.0)


@dataclass(frozen=True)
class UsageSummary:
    period: periods.Period
    meters: list[MeterUsage]

    def get(self, name: str) -> MeterUsage | None:
        return next((m for m in self.meters if m.meter.name == name), None)


def summary(account: Account, now: datetime | None = None) -> UsageSummary:
    period = periods.month_of(now or utcnow(), account.time_zone)
    plan = plans.plan_for(account.tier)
    values = dict(db.session.execute(
        select(UsageCounter.meter_id, UsageCounter.value).where(
            UsageCounter.account_id == account.id, UsageCounter.period_start == period.start)
    ).all())
    return UsageSummary(period, [MeterUsage(m, int(values.get(m.id, 0)), plan.limit(m.name))
                                 for m in meter_defs.all_meters()])


def lifetime_total(account: Account, meter_name: str) -> int:
    return _counter_value(account.id, meter_defs.get_meter(meter_name).id, periods.LIFETIME)


def series(account: Account, meter: Meter, start: datetime, end: datetime,
           granularity: str) -> list[tuple[datetime, int]]:
    """Per-day (local) or per-hour values of a meter over [start, end), gaps filled with 0."""
    if granularity not in ("day", "hour"):
        raise InvalidInput("granularity must be day or hour.", param="granularity")
    tz = periods.zone(account.time_zone)
    rows = db.session.execute(
        select(UsageRollup.bucket_start, UsageRollup.value, UsageRollup.latest_at).where(
            and_(UsageRollup.account_id == account.id, UsageRollup.meter_id == meter.id,
                 UsageRollup.bucket_start >= start, UsageRollup.bucket_start < end))
        .order_by(UsageRollup.bucket_start)).all()
    if granularity == "hour":
        slots, t = [], periods.hour_bucket(start, tz)
        while t < end:
            slots.append(t)
            t += timedelta(hours=1)

        def key(ts: datetime) -> datetime:
            return periods.hour_bucket(ts, tz)
    else:
        slots = periods.local_days(start, end, tz)

        def key(ts: datetime) -> datetime:
            return periods.day_bucket(ts, tz)
    out: dict[datetime, int] = {s: 0 for s in slots}
    if meter.aggregation == "unique_count":
        return sorted(_distinct_per_slot(account, meter, start, end, key, out).items())
    latest: dict[datetime, datetime] = {}
    for bucket, value, latest_at in rows:
        slot = key(bucket)
        if slot not in out:
            continue
        if meter.aggregation in ("count", "sum"):
            out[slot] += int(value)
        elif meter.aggregation == "max":
            out[slot] = max(out[slot], int(value))
        elif latest_at is not None and (slot not in latest or latest_at >= latest[slot]):
            out[slot], latest[slot] = int(value), latest_at
    return sorted(out.items())


def _distinct_per_slot(account: Account, meter: Meter, start: datetime, end: datetime,
                       key: Any, out: dict[datetime, int]) -> dict[datetime, int]:
    """Distinct values per slot, from the per-hour distinct values (not raw events)."""
    seen: dict[datetime, set[str]] = defaultdict(set)
    for bucket, value_hash in db.session.execute(
            select(UsageUnique.scope_start, UsageUnique.value_hash).where(
                UsageUnique.account_id == account.id, UsageUnique.meter_id == meter.id,
                UsageUnique.scope == "hour", UsageUnique.scope_start >= start,
                UsageUnique.scope_start < end)):
        slot = key(bucket)
        if slot in out:
            seen[slot].add(value_hash)
    return {slot: len(seen.get(slot, ())) for slot in out}
