"""Recording usage: new events move the pre-aggregates and are rated, in one transaction.

Events are deduplicated by `(account, event id)`: the ids go into usage_event_ids with
INSERT ... ON CONFLICT DO NOTHING, and only the new ones are stored (usage_events) and
update `usage_rollups` (per local hour, for series) and `usage_counters` (per billing
period and all-time, for limits and summaries). Limit
checks and usage views read those, never raw events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from extensions import db
from models import Account, Meter, UsageCounter, UsageRollup, UsageUnique
from models.base import utcnow
from services.usage import aggregation, alerts, periods, rating, store
from services.usage import meters as meter_defs
from services.usage.events import MAX_AGE, MAX_AHEAD, EventIn
from services.usage.meters import Contribution, Rejected

Counted = dict[tuple[Meter, datetime], int]  # what a call added to a meter in a period


@dataclass(slots=True)
class Cell:
    """A meter's value over one span (an hour, a period) and how many events made it."""

    value: int = 0
    events: int = 0
    latest_at: datetime | None = None

    def add(self, meter: Meter, value: int, at: datetime | None, events: int = 1) -> None:
        self.value, self.latest_at = aggregation.of(meter.aggregation).fold(
            self.value, self.latest_at, value, at)
        self.events += events


def _cell(cells: dict[tuple[Meter, datetime], Cell], key: tuple[Meter, datetime]) -> Cell:
    if key not in cells:
        cells[key] = Cell()
    return cells[key]


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def record(account: Account, events: list[tuple[EventIn, list[Contribution]]],
           skip: frozenset[tuple[str, datetime]] = frozenset()) -> Counted:
    """Update rollups and counters for newly recorded events.

    `skip` names counters (meter id, period start) the gate already moved. Returns what
    the batch added to each limited meter per billing period (the rating input).
    """
    tz = periods.zone(account.time_zone)
    hours: dict[tuple[Meter, datetime], Cell] = {}
    months: dict[tuple[Meter, datetime], Cell] = {}
    uniques: list[tuple[str, datetime, str, str]] = []
    period_starts: dict[datetime, datetime] = {}

    def period_of(bucket: datetime) -> datetime:  # a local hour lies in one local month
        if bucket not in period_starts:
            period_starts[bucket] = periods.month_of(bucket, account.time_zone).start
        return period_starts[bucket]

    for event, contribs in events:
        bucket = periods.hour_bucket(event.timestamp, tz)
        for c in contribs:
            if c.unique_hash:
                uniques += [(c.meter.id, bucket, "hour", c.unique_hash),
                            (c.meter.id, period_of(bucket), "period", c.unique_hash)]
            else:
                _cell(hours, (c.meter, bucket)).add(c.meter, c.value, event.timestamp)
    # Period and all-time counters combine the hours.
    for (meter, bucket), hour in hours.items():
        period = period_of(bucket)
        if (meter.id, period) not in skip:
            _cell(months, (meter, period)).add(meter, hour.value, hour.latest_at, hour.events)
        if aggregation.of(meter.aggregation).limited and (meter.id, periods.LIFETIME) not in skip:
            _cell(months, (meter, periods.LIFETIME)).add(meter, hour.value, hour.latest_at,
                                                         hour.events)
    by_id = {c.meter.id: c.meter for _, cs in events for c in cs}
    for meter_id, start, scope, _ in store.new_uniques(account.id, uniques):
        target = hours if scope == "hour" else months
        _cell(target, (by_id[meter_id], start)).add(by_id[meter_id], 1, start)

    # Counters before rollups, in a fixed order: the same lock order as the gate (which
    # takes counters first), whatever order the events came in.
    store.upsert(UsageCounter, ("account_id", "meter_id", "period_start"), [
        (meter.aggregation, {"account_id": account.id, "meter_id": meter.id,
                             "period_start": start, "value": cell.value,
                             "latest_at": cell.latest_at})
        for (meter, start), cell in months.items()])
    store.upsert(UsageRollup, ("account_id", "meter_id", "bucket_start"), [
        (meter.aggregation, {"account_id": account.id, "meter_id": meter.id,
                             "bucket_start": start, "value": cell.value, "events": cell.events,
                             "latest_at": cell.latest_at})
        for (meter, start), cell in hours.items()])
    return {(meter, start): cell.value for (meter, start), cell in months.items()
            if start != periods.LIFETIME and aggregation.of(meter.aggregation).limited}


@dataclass
class Rows:
    """A batch as the PostgreSQL recording statement takes it (store.record)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    uniques: list[dict[str, Any]] = field(default_factory=list)


def rows_for(account: Account, events: list[tuple[EventIn, list[Contribution]]]) -> Rows:
    """Each event and what it adds where: its local hour's rollup, its period's counter,
    and the all-time counter of limited meters (distinct values per hour and per period).
    The statement keeps only the new events' parts and folds them as `record` does."""
    tz = periods.zone(account.time_zone)
    rows = Rows()
    period_starts: dict[datetime, datetime] = {}
    for position, (event, contribs) in enumerate(events):
        rows.events.append({"event_id": event.id, "event_name": event.event_name,
                            "timestamp": event.timestamp, "properties": event.properties})
        bucket = periods.hour_bucket(event.timestamp, tz)
        period = period_starts.get(bucket)
        if period is None:  # a local hour lies in one local month
            period = period_starts[bucket] = periods.month_of(bucket, account.time_zone).start
        for c in contribs:
            if c.unique_hash:
                rows.uniques += [{"e": event.id, "m": c.meter.id, "s": bucket, "sc": "hour",
                                  "h": c.unique_hash},
                                 {"e": event.id, "m": c.meter.id, "s": period, "sc": "period",
                                  "h": c.unique_hash}]
                continue
            agg = aggregation.of(c.meter.aggregation)
            cell = {"e": event.id, "m": c.meter.id, "w": agg.combine, "v": c.value,
                    "at": event.timestamp, "o": position}
            rows.cells += [{**cell, "t": "r", "s": bucket}, {**cell, "t": "c", "s": period}]
            if agg.limited:
                rows.cells.append({**cell, "t": "c", "s": periods.LIFETIME})
    rows.events.sort(key=lambda r: r["event_id"])  # two batches lock shared ids in one order
    return rows


def record_pg(account: Account, events: list[tuple[EventIn, list[Contribution]]],
              limits: dict[tuple[str, datetime], int] | None = None) -> tuple[store.Recorded, Counted]:
    """PostgreSQL: record the batch in one statement (store.record); what it did, and what
    it added to each limited meter per billing period (the rating input)."""
    rows = rows_for(account, events)
    done = store.record(account.id, rows.events, rows.cells, rows.uniques, limits)
    by_id = {c.meter.id: c.meter for _, cs in events for c in cs}
    added = {(by_id[m], start): delta for (m, start), (delta, _) in done.counters.items()
             if start != periods.LIFETIME and aggregation.of(by_id[m].aggregation).limited}
    return done, added


def rate(account: Account, added: Counted, *, enforce: bool, now: datetime,
         known: dict[tuple[str, datetime], int] | None = None) -> None:
    """Price what this call added to priced meters and accrue it against the credit
    (same transaction). With `enforce` (the gate), a call the credit or the spend cap
    cannot cover raises the 402 and the operation rolls back.

    Rating is cumulative: a counter's value before and after the increment gives the
    price difference. The counter rows are locked by this transaction's upsert, so
    reading them now gives exact before/after values even under concurrency.
    """
    if not account.price_plan_id:
        return
    charges = rating.charges_for(account)
    priced = {k: v for k, v in added.items() if k[0].id in charges and v}
    if not priced:
        return
    known = dict(known or {})
    known.update(store.counter_values(
        account.id, [(m.id, start) for m, start in priced if (m.id, start) not in known]))
    increments = [
        rating.Increment(meter, periods.month_of(start, account.time_zone),
                         known[(meter.id, start)] - delta, known[(meter.id, start)])
        for (meter, start), delta in sorted(priced.items(), key=lambda kv: (kv[0][0].name, kv[0][1]))]
    rating.accrue(account, increments, enforce=enforce, now=now, charges=charges)


def ingest(account: Account, events: list[EventIn], now: datetime | None = None) -> IngestResult:
    """Record a batch; a repeated id (in this batch or any earlier one) counts once."""
    now = now or utcnow()
    result = IngestResult()
    by_name: dict[str, list[Meter]] = defaultdict(list)
    for meter in meter_defs.all_meters():
        by_name[meter.event_name].append(meter)
    valid: list[tuple[EventIn, list[Contribution]]] = []
    seen: set[str] = set()
    for event in events:
        try:
            contribs = _contributions(event, by_name, now)
        except Rejected as rejection:
            result.rejected.append({"index": event.index, "id": event.id, "code": rejection.code,
                                    "message": rejection.message})
            continue
        if event.id in seen:
            result.duplicates += 1
            continue
        seen.add(event.id)
        valid.append((event, contribs))
    if store.dialect() == "postgresql":
        done, added = record_pg(account, valid)
        new_ids = done.new_ids
        fresh = [(e, c) for e, c in valid if e.id in new_ids]
        values = {key: value for key, (_, value) in done.counters.items()}
        period = periods.month_of(now, account.time_zone).start
        rate(account, added, enforce=False, now=now, known=values)
        alerts.raise_alerts(account, {c.meter for _, cs in fresh for c in cs}, now,
                            known={m: v for (m, start), v in values.items() if start == period})
    else:
        new_ids = store.insert_events(account.id, [e for e, _ in valid])
        fresh = [(e, c) for e, c in valid if e.id in new_ids]
        added = record(account, fresh)
        rate(account, added, enforce=False, now=now)
        alerts.raise_alerts(account, {c.meter for _, cs in fresh for c in cs}, now)
    result.accepted = len(fresh)
    result.duplicates += len(valid) - len(fresh)
    return result


def ingest_for_accounts(events: list[tuple[str, EventIn]], now: datetime | None = None) -> IngestResult:
    """Record a batch whose events each name their account (Togai's `accountId`, staff
    only): each account's events are recorded as `ingest` records them; an event for an
    account that does not exist is rejected on its own (`account_not_found`)."""
    now = now or utcnow()
    result = IngestResult()
    by_account: dict[str, list[EventIn]] = defaultdict(list)
    for account_id, event in events:
        by_account[account_id].append(event)
    for account_id, batch in by_account.items():
        account = db.session.get(Account, account_id)
        if account is None:
            result.rejected.extend({"index": e.index, "id": e.id, "code": "account_not_found",
                                    "message": f"No such account: {account_id}"} for e in batch)
            continue
        part = ingest(account, batch, now)
        result.accepted += part.accepted
        result.duplicates += part.duplicates
        result.rejected.extend(part.rejected)
    result.rejected.sort(key=lambda r: r["index"])
    return result


def _contributions(event: EventIn, by_name: dict[str, list[Meter]],
                   now: datetime) -> list[Contribution]:
    """What the event adds to each meter, or Rejected (too old, in the future, malformed,
    read by no meter, properties too large): a rejected event is not stored."""
    if event.timestamp < now - MAX_AGE:
        raise Rejected("timestamp_too_old", "Events older than 35 days are not accepted.")
    if event.timestamp > now + MAX_AHEAD:
        raise Rejected("timestamp_in_future",
                       "Events more than 5 minutes in the future are not accepted.")
    meters = by_name.get(event.event_name)
    if not meters:  # stored, it would cost disk and count for nothing
        raise Rejected("unknown_event_name", f"No meter reads event_name {event.event_name!r}; "
                       "nothing was stored (GET /v1/meters).")
    meter_defs.check_properties_size(event.properties)
    return meter_defs.contributions(meters, event.properties)


# Time zone changes ------------------------------------------------------------


def rebuild_period(account: Account, now: datetime | None = None) -> None:
    """This period's counters as the account's (new) time zone frames it, rebuilt from
    the hourly rollups.

    Counters are keyed by the start of the local month, so after a time-zone change the
    gate would find no counter for the new zone's month and start every meter again at
    zero: a way around the plan's limits. Hours are the same instants in every zone with
    a whole-hour offset (else an hour at the edge of the month falls on one side).
    """
    period = periods.month_of(now or utcnow(), account.time_zone)
    for meter in sorted(meter_defs.all_meters(), key=lambda m: m.id):  # the writers' lock order
        value, latest_at = _rebuilt(account, meter, period)
        row = {"account_id": account.id, "meter_id": meter.id, "period_start": period.start,
               "value": value, "latest_at": latest_at}
        stmt = store.insert(UsageCounter).values(row)
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=["account_id", "meter_id", "period_start"],
            set_={"value": stmt.excluded.value, "latest_at": stmt.excluded.latest_at}))


def _rebuilt(account: Account, meter: Meter, period: periods.Period) -> tuple[int, datetime | None]:
    """A meter's value over `period`, combined from its hourly rollups."""
    agg = aggregation.of(meter.aggregation)
    if agg.distinct:
        hashes = set(db.session.execute(select(UsageUnique.value_hash).where(
            UsageUnique.account_id == account.id, UsageUnique.meter_id == meter.id,
            UsageUnique.scope == "hour", UsageUnique.scope_start >= period.start,
            UsageUnique.scope_start < period.end)).scalars())
        if hashes:
            db.session.execute(store.insert(UsageUnique).on_conflict_do_nothing(), [
                {"account_id": account.id, "meter_id": meter.id, "scope_start": period.start,
                 "scope": "period", "value_hash": h} for h in sorted(hashes)])
        return len(hashes), None
    in_period = (UsageRollup.account_id == account.id, UsageRollup.meter_id == meter.id,
                 UsageRollup.bucket_start >= period.start, UsageRollup.bucket_start < period.end)
    if agg.combine == aggregation.NEWER:
        row = db.session.execute(select(UsageRollup.value, UsageRollup.latest_at).where(*in_period)
                                 .order_by(UsageRollup.latest_at.desc()).limit(1)).first()
        return (int(row[0]), row[1]) if row else (0, None)
    total = func.max if agg.combine == aggregation.LARGER else func.sum
    return int(db.session.execute(
        select(func.coalesce(total(UsageRollup.value), 0)).where(*in_period)).scalar_one()), None
