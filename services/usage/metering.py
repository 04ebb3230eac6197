"""Usage ingestion, the request gate, and usage reads.

Events are deduplicated by `(account, event id)` with INSERT ... ON CONFLICT DO NOTHING;
only the new ones update the pre-aggregates in the same transaction:
`usage_rollups` (per local hour, for series) and `usage_counters` (per billing period
and all-time, for limits and summaries). Limit checks and usage views read those,
never raw events.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import Account, Meter, UsageAlert, UsageCounter, UsageEvent, UsageRollup, UsageUnique
from models.base import UTCDateTime, utcnow
from services.billing import plans
from services.errors import InvalidInput, TallyError
from services.usage import meters as meter_defs
from services.usage import periods, rating
from services.usage.meters import Contribution, Rejected

MAX_BATCH = 1000  # events in one request
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)
NO_LIMIT = 2**63 - 1  # a counter with no limit still goes through the gate's conditional upsert


class UsageLimitExceeded(TallyError):
    status, title, code = 402, "Usage limit exceeded", "usage_limit_exceeded"

    def __init__(self, meter: Meter, current: int, limit: int, *, lifetime: bool = False) -> None:
        scope = "lifetime limit" if lifetime else "limit"
        if current < limit:  # room is left, but less than this call needs
            scope += " would be exceeded by this call"
        else:
            scope += " reached" if lifetime else " reached for current period"
        super().__init__(f"{meter_defs.label(meter)} {scope}",
                         extra={"usage": {"current": current, "limit": limit}})


# Events -----------------------------------------------------------------------


@dataclass
class EventIn:
    """One usage event, its shape already checked (views/api/schemas/metering.py)."""

    index: int  # its place in the request's batch
    id: str
    event_name: str
    timestamp: datetime | None  # None: now
    properties: dict[str, Any]


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


_BULK_STATEMENTS: dict[tuple, Any] = {}


def _insert_rows(model: type, rows: list[dict[str, Any]], tag: str,
                 complete: Callable[[Any], Any], **same: Any) -> Any:
    """Execute an INSERT of many rows, in their order, completed by `complete(insert)`
    (ON CONFLICT, RETURNING; `tag` names that completion); `same` holds the columns whose
    value every row shares. The row dicts are the caller's to give away: they may change.

    On PostgreSQL the rows travel as one JSON document that the server unpacks with
    json_to_recordset: one short statement whatever the batch size, built and compiled
    once per process, instead of a VALUES list of thousands of parameters built,
    compiled and parsed on every call.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return db.session.execute(complete(sqlite.insert(model).values(
            [{**r, **same} for r in rows] if same else rows)))
    columns = model.__table__.c
    names = tuple(rows[0])
    key = (model, names, tuple(same), tag)
    stmt = _BULK_STATEMENTS.get(key)
    if stmt is None:
        source = (func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON))
                  .table_valued(*[column(n, columns[n].type) for n in names])
                  .render_derived("rows", with_types=True))
        shared = [bindparam(f"same_{n}", type_=columns[n].type).label(n) for n in same]
        stmt = _BULK_STATEMENTS[key] = complete(postgresql.insert(model.__table__).from_select(
            [*names, *same], select(*source.c, *shared)))
    for name in [n for n in names if isinstance(columns[n].type, UTCDateTime)]:
        for row in rows:  # as RFC 3339 text, which PostgreSQL reads back exactly (rows are ours)
            value = row[name]
            if value is not None:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given; use models.base.utcnow()")
                row[name] = value.isoformat()
    return db.session.execute(stmt, {"rows": json.dumps(rows),
                                     **{f"same_{n}": value for n, value in same.items()}})


def _insert_events(account_id: str, events: list[EventIn]) -> set[str]:
    """Insert; return the ids that were new (the rest were recorded before)."""
    if not events:
        return set()
    # In id order, so two batches sharing ids take their row locks in one order (no deadlock).
    rows = [{"event_id": e.id, "event_name": e.event_name, "timestamp": e.timestamp,
             "properties": e.properties} for e in sorted(events, key=lambda e: e.id)]
    result = _insert_rows(UsageEvent, rows, "new_events", _new_events,
                          account_id=account_id, received_at=utcnow())
    return set(result.scalars())


def _new_events(stmt: Any) -> Any:
    return (stmt.on_conflict_do_nothing(index_elements=["account_id", "event_id"])
            .returning(UsageEvent.event_id))


@dataclass(slots=True)
class _Cell:
    value: int = 0
    events: int = 0
    latest_at: datetime | None = None


ADDITIVE = ("count", "sum", "unique_count")  # aggregations whose values add up


def _accumulate(cells: dict[tuple, _Cell], key: tuple, c: Contribution, at: datetime) -> None:
    cell = cells.get(key)
    if cell is None:
        cell = cells[key] = _Cell()
    agg = c.meter.aggregation
    cell.events += 1
    if agg in ADDITIVE:
        cell.value += c.value
    elif agg == "max":
        cell.value = max(cell.value, c.value)
    elif agg == "latest" and (cell.latest_at is None or at >= cell.latest_at):
        cell.value, cell.latest_at = c.value, at


def _merge(cells: dict[tuple, _Cell], key: tuple, aggregation: str, part: _Cell) -> None:
    """Fold an hour's cell into a period's, as if its events were accumulated one by one."""
    cell = cells.get(key)
    if cell is None:
        cells[key] = _Cell(part.value, part.events, part.latest_at)
        return
    cell.events += part.events
    if aggregation in ADDITIVE:
        cell.value += part.value
    elif aggregation == "max":
        cell.value = max(cell.value, part.value)
    elif aggregation == "latest" and part.latest_at is not None and (
            cell.latest_at is None or part.latest_at >= cell.latest_at):
        cell.value, cell.latest_at = part.value, part.latest_at


def _upsert(model: type, keys: tuple[str, ...], rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Merge pre-aggregated (aggregation, row) pairs into rollups or counters.

    One statement per way of merging; additive aggregations share one.
    """
    merges: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for aggregation, row in rows:
        merges["add" if aggregation in ADDITIVE else aggregation].append(row)
    for merge, group in sorted(merges.items()):
        # One lock order for every writer, the gate included: by meter, newest period
        # first (the gate moves a period's counter before the LIFETIME one). No deadlocks.
        group.sort(key=lambda r: (r["account_id"], r["meter_id"], -r[keys[2]].timestamp()))
        _insert_rows(model, group, f"merge_{merge}", functools.partial(_merge_on_conflict, keys, merge))


def _merge_on_conflict(keys: tuple[str, ...], merge: str, stmt: Any) -> Any:
    table, new = stmt.table.c, stmt.excluded
    if merge == "add":
        value = table.value + new.value
    elif merge == "max":
        value = _greatest(table.value, new.value)
    else:  # latest
        value = case((new.latest_at >= table.latest_at, new.value), else_=table.value)
    set_: dict[str, Any] = {"value": value}
    if "events" in table:
        set_["events"] = table.events + new.events
    if merge == "latest":
        set_["latest_at"] = _greatest(table.latest_at, new.latest_at)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)


def _new_uniques(account_id: str, rows: list[tuple[str, datetime, str, str]]) -> set[tuple]:
    """Insert distinct values; return the (meter, scope_start, scope, hash) that were new."""
    if not rows:
        return set()
    params = [{"meter_id": m, "scope_start": s, "scope": sc, "value_hash": h}
              for m, s, sc, h in sorted(set(rows))]
    return {tuple(r) for r in _insert_rows(UsageUnique, params, "new_uniques", _new_unique_rows,
                                           account_id=account_id)}


def _new_unique_rows(stmt: Any) -> Any:
    return stmt.on_conflict_do_nothing().returning(
        UsageUnique.meter_id, UsageUnique.scope_start, UsageUnique.scope, UsageUnique.value_hash)


def _record(account: Account, events: list[tuple[EventIn, list[Contribution]]],
            skip: frozenset[tuple[str, datetime]] = frozenset()) -> dict[tuple[Meter, datetime], int]:
    """Update rollups and counters for newly recorded events (caller commits).

    `skip` names counters (meter id, period start) the gate already moved. Returns what
    the batch added to each count and sum meter per billing period (the rating input).
    """
    tz = periods.zone(account.time_zone)
    hours: dict[tuple, _Cell] = {}
    months: dict[tuple, _Cell] = {}
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
                continue
            _accumulate(hours, (c.meter, bucket), c, event.timestamp)
    # Period and all-time counters are the sums (max, latest) of the hours.
    for (meter, bucket), cell in hours.items():
        period = period_of(bucket)
        if (meter.id, period) not in skip:
            _merge(months, (meter, period), meter.aggregation, cell)
        if meter.aggregation in ("count", "sum") and (meter.id, periods.LIFETIME) not in skip:
            _merge(months, (meter, periods.LIFETIME), meter.aggregation, cell)
    for meter_id, start, scope, _ in _new_uniques(account.id, uniques):
        meter = next(c.meter for _, cs in events for c in cs if c.meter.id == meter_id)
        target = hours if scope == "hour" else months
        _accumulate(target, (meter, start), Contribution(meter, 1), start)

    # Counters before rollups, in a fixed order: the same lock order as the gate (which
    # takes counters first), whatever order the events came in.
    _upsert(UsageCounter, ("account_id", "meter_id", "period_start"), [
        (meter.aggregation, {"account_id": account.id, "meter_id": meter.id,
                             "period_start": start, "value": cell.value,
                             "latest_at": cell.latest_at})
        for (meter, start), cell in months.items()])
    _upsert(UsageRollup, ("account_id", "meter_id", "bucket_start"), [
        (meter.aggregation, {"account_id": account.id, "meter_id": meter.id,
                             "bucket_start": start, "value": cell.value, "events": cell.events,
                             "latest_at": cell.latest_at})
        for (meter, start), cell in hours.items()])
    return {(meter, start): cell.value for (meter, start), cell in months.items()
            if start != periods.LIFETIME and meter.aggregation in ("count", "sum")}


def _rate(account: Account, added: dict[tuple[Meter, datetime], int], *, enforce: bool,
          now: datetime, known: dict[tuple[str, datetime], int] | None = None) -> None:
    """Price what this call added to priced meters and accrue it against the credit
    (same transaction). With `enforce` (the gate), a call the credit or the spend cap
    cannot cover raises OutOfCredit and the caller rolls back.

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
    missing = [(m.id, start) for m, start in priced if (m.id, start) not in known]
    if missing:
        rows = db.session.execute(select(
            UsageCounter.meter_id, UsageCounter.period_start, UsageCounter.value).where(
            UsageCounter.account_id == account.id,
            UsageCounter.meter_id.in_({m for m, _ in missing}),
            UsageCounter.period_start.in_({s for _, s in missing}))).all()
        known.update({(m, s): int(v) for m, s, v in rows})
    increments = [
        rating.Increment(meter, periods.month_of(start, account.time_zone),
                         known[(meter.id, start)] - delta, known[(meter.id, start)])
        for (meter, start), delta in sorted(priced.items(), key=lambda kv: (kv[0][0].name, kv[0][1]))]
    rating.accrue(account, increments, enforce=enforce, now=now, charges=charges)


def ingest(account: Account, events: list[EventIn], now: datetime | None = None) -> IngestResult:
    """Record a batch; a repeated id (in this batch or any earlier one) counts once."""
    now = now or utcnow()
    parsed = [event if event.timestamp else replace(event, timestamp=now) for event in events]
    result = IngestResult()
    by_name: dict[str, list[Meter]] = defaultdict(list)
    for meter in meter_defs.all_meters():
        by_name[meter.event_name].append(meter)
    valid: list[tuple[EventIn, list[Contribution]]] = []
    seen: set[str] = set()
    oldest, newest = now - MAX_AGE, now + MAX_AHEAD
    for event in parsed:
        assert event.timestamp is not None
        try:
            if event.timestamp < oldest:
                raise Rejected("timestamp_too_old", "Events older than 35 days are not accepted.")
            if event.timestamp > newest:
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
        added = _record(account, fresh)
        _rate(account, added, enforce=False, now=now)
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


_COUNTER_VALUE = select(UsageCounter.value).where(
    UsageCounter.account_id == bindparam("account_id"),
    UsageCounter.meter_id == bindparam("meter_id"),
    UsageCounter.period_start == bindparam("period_start"))


def _counter_value(account_id: str, meter_id: str, period_start: datetime) -> int:
    value = db.session.execute(_COUNTER_VALUE, {
        "account_id": account_id, "meter_id": meter_id, "period_start": period_start,
    }).scalar_one_or_none()
    return int(value or 0)


def _take(account_id: str, meter: Meter, period_start: datetime, amount: int,
          limit: int) -> int | None:
    """Add `amount` to a counter only if it stays within `limit`; the new value or None.

    One conditional upsert: concurrent gate calls cannot both take the last unit.
    """
    if amount > limit:
        return None
    return db.session.execute(_take_statement(db.session.get_bind().dialect.name), {
        "account_id": account_id, "meter_id": meter.id, "period_start": period_start,
        "amount": amount, "limit": limit,
    }).scalar_one_or_none()


@functools.cache
def _take_statement(dialect: str) -> Any:
    columns = UsageCounter.__table__.c
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(UsageCounter.__table__)
    stmt = stmt.values(account_id=bindparam("account_id", type_=columns.account_id.type),
                       meter_id=bindparam("meter_id", type_=columns.meter_id.type),
                       period_start=bindparam("period_start", type_=columns.period_start.type),
                       value=bindparam("amount", type_=columns.value.type))
    return stmt.on_conflict_do_update(
        index_elements=["account_id", "meter_id", "period_start"],
        set_={"value": columns.value + stmt.excluded.value},
        where=columns.value + stmt.excluded.value <= bindparam("limit", type_=columns.value.type),
    ).returning(columns.value)


def authorize(account: Account, *, event_name: str = "api_call", quantity: int = 1,
              request_id: str | None = None, properties: dict[str, Any] | None = None,
              now: datetime | None = None) -> Decision:
    """May this key make this call? Check limits and record the call, all at once.

    A refused call records nothing. A repeated `request_id` is answered again, not counted.
    """
    now = now or utcnow()
    event = EventIn(0, request_id or f"auth_{uuid.uuid4().hex}", event_name, now,
                    {**(properties or {}), "quantity": quantity})
    plan = plans.plan_for(account.tier)
    meters = meter_defs.meters_for_event(event.event_name)
    if not meters:  # a typo ("api_calls") would otherwise pass the gate unmetered
        known = sorted({m.event_name for m in meter_defs.all_meters()})
        raise InvalidInput(f"No meter reads event_name {event.event_name!r}, so the gate cannot "
                           f"check it. Meters read: {', '.join(known)}.",
                           code="unknown_event_name", param="event_name")
    try:
        contribs = meter_defs.contributions(meters, event.properties)
    except Rejected as rejection:
        raise InvalidInput(rejection.message, code=rejection.code, param="properties") from None
    primary = contribs[0].meter if contribs else None
    period = periods.month_of(now, account.time_zone)
    # Read now: a commit or rollback expires them, and reading them again costs a query.
    answer = Decision(account.id, account.tier, 0,
                      plan.limit(primary.name) if primary is not None else None)
    primary_id = primary.id if primary is not None else None
    taken: dict[tuple[str, datetime], int] = {}
    try:
        if not _insert_events(account.id, [event]):
            answer = _with_current(answer, primary_id, period.start, {}, duplicate=True)
            db.session.rollback()
            return answer
        # Every count and sum counter of this call, limited or not, in the one lock order
        # all writers use (meter id, the period before LIFETIME): no deadlock with a batch.
        for c in sorted(contribs, key=lambda c: c.meter.id):
            if c.meter.aggregation not in ("count", "sum"):
                continue
            for start, limit_name, lifetime in (
                    (period.start, c.meter.name, False),
                    (periods.LIFETIME, meter_defs.lifetime_limit_name(c.meter.name), True)):
                limit = plan.limit(limit_name)
                value = _take(account.id, c.meter, start, c.value, NO_LIMIT if limit is None else limit)
                if value is None:
                    assert limit is not None
                    refusal = UsageLimitExceeded(
                        c.meter, _counter_value(account.id, c.meter.id, start), limit,
                        lifetime=lifetime)
                    db.session.rollback()
                    raise refusal
                taken[(c.meter.id, start)] = value
        _record(account, [(event, contribs)], skip=frozenset(taken))
        _rate(account, {(c.meter, period.start): c.value for c in contribs
                        if c.meter.aggregation in ("count", "sum")},
              enforce=True, now=now, known=taken)
        _raise_alerts(account, {c.meter for c in contribs}, now,
                      known={m: v for (m, start), v in taken.items() if start == period.start})
        answer = _with_current(answer, primary_id, period.start, taken)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return answer


def _with_current(answer: Decision, meter_id: str | None, period_start: datetime,
                  taken: dict[tuple[str, datetime], int], duplicate: bool = False) -> Decision:
    """`answer` with the meter's usage this period, read in the caller's transaction
    (before its commit, which would cost a new connection checkout to read after)."""
    if meter_id is None:
        return replace(answer, duplicate=duplicate)
    current = taken.get((meter_id, period_start))
    if current is None:
        current = _counter_value(answer.account_id, meter_id, period_start)
    return replace(answer, current=current, duplicate=duplicate)


# Alerts -----------------------------------------------------------------------


def _raise_alerts(account: Account, meters: set[Meter], now: datetime,
                  known: dict[str, int] | None = None) -> None:
    """Record each threshold crossed this period, once (the unique constraint decides).

    `known`: this period's counter values (by meter id) the caller already read in this
    transaction.
    """
    plan = plans.plan_for(account.tier)
    period = periods.month_of(now, account.time_zone)
    rows = []
    for meter in meters:
        limit = plan.limit(meter.name)
        if not limit:
            continue
        value = (known or {}).get(meter.id)
        if value is None:
            value = _counter_value(account.id, meter.id, period.start)
        for threshold in sorted(set(account.alert_thresholds or [])):
            if value * 100 >= limit * threshold:
                rows.append({"account_id": account.id, "meter_id": meter.id, "threshold": threshold,
                             "period_start": period.start, "value": value, "limit": limit,
                             "created_at": now})
    if rows:
        db.session.execute(_insert(UsageAlert).on_conflict_do_nothing(), rows)


@dataclass(frozen=True)
class ShownAlert:
    """A threshold crossing worth showing: the recorded row, its meter, and whether
    another plan offers more of that meter (only then do pages suggest upgrading)."""

    alert: UsageAlert
    meter: Meter
    upgradable: bool


def upgradable(tier: str, meter_name: str) -> bool:
    """Whether a paid plan other than `tier` has a higher limit (or none) for this meter.
    False on the top plan, so no page tells its customers to upgrade."""
    current = plans.plan_for(tier)
    limit = current.limit(meter_name)
    if limit is None:
        return False
    for other in plans.all_plans():
        more = other.limit(meter_name)
        if other.price is not None and other.name != current.name and (more is None or more > limit):
            return True
    return False


def alerts(account: Account, now: datetime | None = None) -> list[ShownAlert]:
    """This period's alerts that still hold, the highest threshold per meter.

    An alert records the value and the limit at its crossing. One recorded against
    another limit than the account's plan has now (say on Free, before an upgrade to Pro)
    says nothing about the current limit, so it is left out; the row stays (it is
    history) and shows again if the account returns to that limit.
    """
    period = periods.month_of(now or utcnow(), account.time_zone)
    plan = plans.plan_for(account.tier)
    shown: dict[str, ShownAlert] = {}
    for alert, meter in db.session.execute(
            select(UsageAlert, Meter).join(Meter, Meter.id == UsageAlert.meter_id)
            .where(UsageAlert.account_id == account.id, UsageAlert.period_start == period.start)
            .order_by(UsageAlert.threshold.desc(), UsageAlert.created_at.desc())).all():
        if meter.name in shown or alert.limit != plan.limit(meter.name):
            continue
        shown[meter.name] = ShownAlert(alert, meter, upgradable(account.tier, meter.name))
    return list(shown.values())


# Time zone changes ------------------------------------------------------------


def rebuild_period(account: Account, now: datetime | None = None) -> None:
    """This period's counters as the account's (new) time zone frames it, rebuilt from
    the hourly rollups (caller commits).

    Counters are keyed by the start of the local month, so after a time-zone change the
    gate would find no counter for the new zone's month and start every meter again at
    zero: a way around the plan's limits. Hours are the same instants in every zone with
    a whole-hour offset (else an hour at the edge of the month falls on one side).
    """
    period = periods.month_of(now or utcnow(), account.time_zone)
    in_period = (UsageRollup.account_id == account.id, UsageRollup.bucket_start >= period.start,
                 UsageRollup.bucket_start < period.end)
    for meter in sorted(meter_defs.all_meters(), key=lambda m: m.id):  # the writers' lock order
        latest_at = None
        if meter.aggregation == "unique_count":
            hashes = set(db.session.execute(select(UsageUnique.value_hash).where(
                UsageUnique.account_id == account.id, UsageUnique.meter_id == meter.id,
                UsageUnique.scope == "hour", UsageUnique.scope_start >= period.start,
                UsageUnique.scope_start < period.end)).scalars())
            if hashes:
                db.session.execute(_insert(UsageUnique).on_conflict_do_nothing(), [
                    {"account_id": account.id, "meter_id": meter.id, "scope_start": period.start,
                     "scope": "period", "value_hash": h} for h in sorted(hashes)])
            value = len(hashes)
        elif meter.aggregation == "latest":
            row = db.session.execute(select(UsageRollup.value, UsageRollup.latest_at).where(
                UsageRollup.meter_id == meter.id, *in_period)
                .order_by(UsageRollup.latest_at.desc()).limit(1)).first()
            value, latest_at = (int(row[0]), row[1]) if row else (0, None)
        else:
            total = func.max if meter.aggregation == "max" else func.sum
            value = int(db.session.execute(select(func.coalesce(total(UsageRollup.value), 0)).where(
                UsageRollup.meter_id == meter.id, *in_period)).scalar_one())
        row = {"account_id": account.id, "meter_id": meter.id, "period_start": period.start,
               "value": value, "latest_at": latest_at}
        stmt = _insert(UsageCounter).values(row)
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=["account_id", "meter_id", "period_start"],
            set_={"value": stmt.excluded.value, "latest_at": stmt.excluded.latest_at}))


# Reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterUsage:
    meter: Meter
    current: int
    limit: int | None
    upgradable: bool = False  # another plan offers more (see `upgradable`)

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
    return UsageSummary(period, [MeterUsage(m, int(values.get(m.id, 0)), plan.limit(m.name),
                                            upgradable(account.tier, m.name))
                                 for m in meter_defs.all_meters()])


def lifetime_total(account: Account, meter_name: str) -> int:
    return _counter_value(account.id, meter_defs.get_meter(meter_name).id, periods.LIFETIME)


def series(account: Account, meter: Meter, start: datetime, end: datetime,
           granularity: Literal["day", "hour"]) -> list[tuple[datetime, int]]:
    """Per-day (local) or per-hour values of a meter over [start, end), gaps filled with 0."""
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
