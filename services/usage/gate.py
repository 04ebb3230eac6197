"""The gate: may this key make this call? Checked and recorded at once (`POST /v1/authorize`).

A refused call records nothing (the 402 rolls the operation back). A repeated request
`id` is answered again, not counted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from models import Account, Meter
from models.base import utcnow
from services.billing import plans
from services.errors import InvalidInput, LimitExceeded
from services.usage import aggregation, alerts, periods, recording, store
from services.usage import meters as meter_defs
from services.usage.events import EventIn
from services.usage.meters import Contribution, Rejected


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


def over_limit(meter: Meter, current: int, limit: int, *, lifetime: bool = False) -> LimitExceeded:
    """The 402 for a call a plan limit (monthly, or lifetime) cannot take."""
    scope = "lifetime limit" if lifetime else "limit"
    if current < limit:  # room is left, but less than this call needs
        scope += " would be exceeded by this call"
    else:
        scope += " reached" if lifetime else " reached for current period"
    return LimitExceeded(f"{meter_defs.label(meter)} {scope}", current=current, limit=limit)


def contributions(event: EventIn) -> list[Contribution]:
    """What the call adds to each meter; a 400 for an event no meter reads, or bad properties."""
    meters = meter_defs.meters_for_event(event.event_name)
    if not meters:  # a typo ("api_calls") would otherwise pass the gate unmetered
        known = sorted({m.event_name for m in meter_defs.all_meters()})
        raise InvalidInput(f"No meter reads event_name {event.event_name!r}, so the gate cannot "
                           f"check it. Meters read: {', '.join(known)}.",
                           code="unknown_event_name", param="event_name")
    try:
        meter_defs.check_properties_size(event.properties)
        return meter_defs.contributions(meters, event.properties)
    except Rejected as rejection:
        raise InvalidInput(rejection.message, code=rejection.code, param="properties") from None


def event_of(event_name: str, quantity: int, request_id: str | None,
             properties: dict[str, Any] | None, now: datetime) -> EventIn:
    """The call as an event: `quantity` counts in its properties; without a `request_id`
    it gets an id of its own (no retry can repeat it)."""
    return EventIn(0, request_id or f"auth_{uuid.uuid4().hex}", event_name, now,
                   {**(properties or {}), "quantity": quantity})


def authorize(account: Account, *, event_name: str = "api_call", quantity: int = 1,
              request_id: str | None = None, properties: dict[str, Any] | None = None,
              now: datetime | None = None) -> Decision:
    """Check every limit the call touches and record it, all at once; or refuse (402).
    The call is an event (`event_of`)."""
    now = now or utcnow()
    event = event_of(event_name, quantity, request_id, properties, now)
    contribs = contributions(event)
    plan = plans.plan_for(account.tier)
    primary = contribs[0].meter if contribs else None
    period = periods.month_of(now, account.time_zone)
    # Read now: a commit or rollback expires them, and reading them again costs a query.
    answer = Decision(account.id, account.tier, 0,
                      plan.limit(primary.name) if primary is not None else None)
    primary_id = primary.id if primary is not None else None
    if store.dialect() == "postgresql":
        return _authorize_pg(account, plan, event, contribs, period, answer, now)
    if not store.insert_events(account.id, [event]):
        return _with_current(answer, primary_id, period.start, {}, duplicate=True)
    taken = _take_limits(account, plan, contribs, period)
    recording.record(account, [(event, contribs)], skip=frozenset(taken))
    limited = {(c.meter, period.start): c.value for c in contribs
               if aggregation.of(c.meter.aggregation).limited}
    recording.rate(account, limited, enforce=True, now=now, known=taken)
    alerts.raise_alerts(account, {c.meter for c in contribs}, now,
                        known={m: v for (m, start), v in taken.items() if start == period.start})
    return _with_current(answer, primary_id, period.start, taken)


def limits(plan: plans.Plan, contribs: list[Contribution],
           period: periods.Period) -> list[tuple[Meter, datetime, int, bool]]:
    """Every limited counter the call moves, in the writers' lock order (meter id, the
    period before LIFETIME): (meter, period start, limit, whether it is the all-time one)."""
    out = []
    for c in sorted(contribs, key=lambda c: c.meter.id):
        if aggregation.of(c.meter.aggregation).limited:
            for start, limit_name, lifetime in (
                    (period.start, c.meter.name, False),
                    (periods.LIFETIME, meter_defs.lifetime_limit_name(c.meter.name), True)):
                limit = plan.limit(limit_name)
                out.append((c.meter, start, store.NO_LIMIT if limit is None else limit, lifetime))
    return out


def _authorize_pg(account: Account, plan: plans.Plan, event: EventIn, contribs: list[Contribution],
                  period: periods.Period, answer: Decision, now: datetime) -> Decision:
    """PostgreSQL: the event, its limited counters (each only within its limit), the other
    counters and the rollups in one statement (store.record, which ingestion uses too)."""
    limited = limits(plan, contribs, period)
    done, added = recording.record_pg(account, [(event, contribs)],
                                      {(m.id, start): limit for m, start, limit, _ in limited})
    primary_id = contribs[0].meter.id if contribs else None
    if not done.new_ids:
        return _with_current(answer, primary_id, period.start, {}, duplicate=True)
    for meter, start, limit, lifetime in limited:
        if (meter.id, start) not in done.counters:  # refused: the 402 rolls the statement back
            raise over_limit(meter, store.counter_value(account.id, meter.id, start), limit,
                             lifetime=lifetime)
    taken = {key: value for key, (_, value) in done.counters.items()}
    recording.rate(account, added, enforce=True, now=now, known=taken)
    alerts.raise_alerts(account, {c.meter for c in contribs}, now,
                        known={m: v for (m, start), v in taken.items() if start == period.start})
    return _with_current(answer, primary_id, period.start, taken)


def _take_limits(account: Account, plan: plans.Plan, contribs: list[Contribution],
                 period: periods.Period) -> dict[tuple[str, datetime], int]:
    """Move every limited counter of this call (the period's and the lifetime one), each
    only if it stays within its limit; the new values, or the 402 of the first that
    cannot. In the one lock order all writers use (meter id, the period before LIFETIME):
    no deadlock with a batch."""
    taken: dict[tuple[str, datetime], int] = {}
    for c in sorted(contribs, key=lambda c: c.meter.id):
        if not aggregation.of(c.meter.aggregation).limited:
            continue
        for start, limit_name, lifetime in (
                (period.start, c.meter.name, False),
                (periods.LIFETIME, meter_defs.lifetime_limit_name(c.meter.name), True)):
            limit = plan.limit(limit_name)
            value = store.take(account.id, c.meter.id, start, c.value,
                               store.NO_LIMIT if limit is None else limit)
            if value is None:
                assert limit is not None
                raise over_limit(c.meter, store.counter_value(account.id, c.meter.id, start), limit,
                                 lifetime=lifetime)
            taken[(c.meter.id, start)] = value
    return taken


def _with_current(answer: Decision, meter_id: str | None, period_start: datetime,
                  taken: dict[tuple[str, datetime], int], duplicate: bool = False) -> Decision:
    """`answer` with the meter's usage this period, read in the caller's transaction
    (before its commit, which would cost a new connection checkout to read after)."""
    if meter_id is None:
        return replace(answer, duplicate=duplicate)
    current = taken.get((meter_id, period_start))
    if current is None:
        current = store.counter_value(answer.account_id, meter_id, period_start)
    return replace(answer, current=current, duplicate=duplicate)
