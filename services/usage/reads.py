"""Reading usage: this period's meters against the plan's limits, and series for charts.

Everything here reads the pre-aggregates (counters, hourly rollups and distinct values),
never raw events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, select

from extensions import db
from models import Account, Meter, UsageCounter, UsageRollup, UsageUnique
from models.base import utcnow
from services.billing import plans
from services.usage import aggregation, alerts, periods, store
from services.usage import meters as meter_defs


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
    """This period's value of every meter against the plan's limits."""
    period = periods.month_of(now or utcnow(), account.time_zone)
    plan = plans.plan_for(account.tier)
    values = dict(db.session.execute(
        select(UsageCounter.meter_id, UsageCounter.value).where(
            UsageCounter.account_id == account.id, UsageCounter.period_start == period.start)
    ).all())
    return UsageSummary(period, [MeterUsage(m, int(values.get(m.id, 0)), plan.limit(m.name),
                                            alerts.upgradable(account.tier, m.name))
                                 for m in meter_defs.all_meters()])


def lifetime_total(account: Account, meter_name: str) -> int:
    """A limited meter's all-time value."""
    return store.counter_value(account.id, meter_defs.get_meter(meter_name).id, periods.LIFETIME)


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
    if aggregation.of(meter.aggregation).distinct:
        return sorted(_distinct_per_slot(account, meter, start, end, key, out).items())
    agg = aggregation.of(meter.aggregation)
    latest: dict[datetime, datetime | None] = {}
    for bucket, value, latest_at in rows:
        slot = key(bucket)
        if slot in out:
            out[slot], latest[slot] = agg.fold(out[slot], latest.get(slot), int(value), latest_at)
    return sorted(out.items())


def _distinct_per_slot(account: Account, meter: Meter, start: datetime, end: datetime,
                       key: Callable[[datetime], datetime], out: dict[datetime, int]) -> dict[datetime, int]:
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
