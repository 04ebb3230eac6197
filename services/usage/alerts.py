"""Usage alerts: each threshold of a plan limit crossed in a period, recorded once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from extensions import db
from models import Account, Meter, UsageAlert
from models.base import utcnow
from services.billing import plans
from services.notifications import notices
from services.usage import periods, store


def raise_alerts(account: Account, meters: set[Meter], now: datetime,
                  known: dict[str, int] | None = None) -> None:
    """Record each threshold crossed this period, once (the unique constraint decides).

    `known`: this period's counter values (by meter id) the caller already read in this
    transaction.
    """
    period = periods.month_of(now, account.time_zone)
    values = dict(known or {})
    for meter in meters:
        if meter.id not in values and plans.plan_for(account.tier).limit(meter.name):
            values[meter.id] = store.counter_value(account.id, meter.id, period.start)
    rows = crossed(account, meters, period, values, now)
    if rows:
        # A threshold is crossed once a period: only a row inserted now is news, and its
        # email is queued with it.
        names = {m.id: m.name for m in meters}
        for new in db.session.execute(store.insert(UsageAlert).values(rows).on_conflict_do_nothing()
                                      .returning(UsageAlert.meter_id, UsageAlert.threshold,
                                                 UsageAlert.value, UsageAlert.limit)).all():
            notices.usage_alert(account, names[new.meter_id], new.threshold, new.value, new.limit,
                                period.label)


def crossed(account: Account, meters: set[Meter], period: periods.Period,
            values: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    """The alert rows of every threshold the meters' `values` (by meter id, this period;
    every limited meter's) have reached: recorded already, or to record now."""
    plan = plans.plan_for(account.tier)
    rows = []
    for meter in meters:
        limit = plan.limit(meter.name)
        if not limit:
            continue
        value = values[meter.id]
        for threshold in sorted(set(account.alert_thresholds or [])):
            if value >= reached_at(limit, threshold):
                rows.append({"account_id": account.id, "meter_id": meter.id, "threshold": threshold,
                             "period_start": period.start, "value": value, "limit": limit,
                             "created_at": now})
    return rows


def reached_at(limit: int, threshold: int) -> int:
    """The least value that reaches `threshold` percent of `limit`."""
    return -(-limit * threshold // 100)


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


def current_alerts(account: Account, now: datetime | None = None) -> list[ShownAlert]:
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


