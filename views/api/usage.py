"""The gate, event ingestion, usage, settings and meters."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from flask import request

from models import Meter as MeterRow
from models.base import utcnow
from models.keys import KIND_STAFF
from services import usage as metering
from services.errors import InvalidInput
from services.identity import members
from services.pagination import paginate_list
from services.usage import meters as meter_defs
from services.usage import rating, settings
from services.usage.gate import Decision
from views.api import (
    ACCOUNT_KEY,
    STAFF_KEY,
    USAGE_OR_ACCOUNT_KEY,
    account,
    bp,
    current_key,
    staff_actor,
)
from views.api.declare import OneOf, operation
from views.api.schemas.metering import (
    Authorization,
    AuthorizationUsage,
    AuthorizeRequest,
    CreateMeterRequest,
    Event,
    EventBatch,
    IngestResult,
    Meter,
    MeterList,
    MeterQuery,
    MeterUsage,
    MeterUsageQuery,
    Rejection,
    Settings,
    SettingsRequest,
    Spend,
    Usage,
    UsagePoint,
    UsageValues,
    event_shape,
)
from views.api.schemas.togai import TogaiBatch, TogaiSingle, togai_events, togai_shape

MAX_SERIES_POINTS = 24 * 62  # two months of hours, or ~4 years of days
EVENT_ID_HANDED_OVER = "tally.gate.event_id"  # WSGI environ (views/api/gate_path.py)


@bp.post("/authorize")
@operation(USAGE_OR_ACCOUNT_KEY, "Metering", "The gate: may this key make this call?", Authorization,
           body=AuthorizeRequest, errors=(402,),
           description="Checks the key, the rate limit and the plan limits (and prepaid credit for "
                       "priced meters), then records the event, in one call. A refused call "
                       "records nothing.",
           permission=members.USAGE)
def authorize(body: AuthorizeRequest) -> Authorization:
    # The gate's WSGI path (views/api/gate_path.py) hands a call to Flask with the id it
    # gave the call, so a call it may have committed is never counted twice. Found
    # recorded, that call was counted (by the path): not a duplicate of the caller's.
    handed = None if body.id else request.environ.get(EVENT_ID_HANDED_OVER)
    decision = metering.authorize(account(), event_name=body.event_name, quantity=body.quantity,
                                  request_id=body.id or handed, properties=body.properties or {})
    return authorization(replace(decision, duplicate=False) if handed else decision)


def authorization(decision: Decision) -> Authorization:
    """The gate's answer."""
    return Authorization(account_id=decision.account_id, tier=decision.tier,
                         usage=AuthorizationUsage(current=decision.current, limit=decision.limit),
                         remaining=decision.remaining, duplicate=True if decision.duplicate else None)


def _events_shape(body: dict) -> type:
    """A staff key sends Togai's bodies (each event names its account); others send Tally's."""
    return togai_shape(body) if current_key().kind == KIND_STAFF else event_shape(body)


@bp.post("/events")
@operation((*USAGE_OR_ACCOUNT_KEY, *STAFF_KEY), "Metering", "Ingest usage events (1 to 1,000)",
           IngestResult, body=OneOf((EventBatch, Event, TogaiBatch, TogaiSingle), _events_shape),
           errors=(402,),
           description="`id` is the idempotency key per account: a repeat is counted once "
                       "and reported in `duplicates`, for as long as the event is kept (at "
                       "least TALLY_EVENT_RETENTION_DAYS, 400 unless set, after it arrived; "
                       "longer than the 35 days an event may be late). A body that is not this shape "
                       "is a 400 and stores nothing. With a staff key, Togai's bodies: "
                       "`{\"event\": {...}}` or `{\"events\": [...]}` (1 to 500), each event "
                       "`{id, schemaName, accountId, timestamp, attributes, dimensions}`, metered "
                       "as Tally's own; an event for an account that does not exist is rejected "
                       "(`account_not_found`).",
           permission=members.USAGE)
def events(body: EventBatch | Event | TogaiBatch | TogaiSingle) -> IngestResult:
    now = utcnow()  # an event without a timestamp happened now
    if isinstance(body, TogaiBatch | TogaiSingle):
        result = metering.ingest_for_accounts(togai_events(body, now), now=now)
    else:
        batch = body.events if isinstance(body, EventBatch) else [body]
        result = metering.ingest(account(), [
            metering.EventIn(i, e.id, e.event_name, e.timestamp or now, e.properties or {})
            for i, e in enumerate(batch)], now=now)
    return IngestResult(accepted=result.accepted, duplicates=result.duplicates,
                        rejected=[Rejection(**r) for r in result.rejected])


@bp.get("/billing/usage")
@operation(USAGE_OR_ACCOUNT_KEY, "Metering", "This period's usage against the limits", Usage,
           permission=members.READ)
def usage() -> Usage:
    summary = metering.summary(account())
    values: dict[str, int | None] = {}
    for m in summary.meters:
        values[m.meter.name] = m.current
        values[m.meter.name + "Limit"] = m.limit
    spend = rating.spend(account(), summary.period)
    return Usage(period=summary.period.label, period_start=summary.period.start,
                 period_end=summary.period.end, time_zone=summary.period.time_zone,
                 usage=UsageValues.model_validate(values),
                 spend=Spend(amount=spend.amount, cap=spend.cap, currency=spend.currency))


@bp.get("/billing/settings")
@operation(ACCOUNT_KEY, "Metering", "Time zone, spend cap, alerts", Settings,
           permission=members.READ)
def get_settings() -> Settings:
    return Settings(**settings.as_dict(account()))


@bp.post("/billing/settings")
@operation(ACCOUNT_KEY, "Metering", "Change time zone, spend cap, alerts", Settings,
           body=SettingsRequest,
           permission=members.SETTINGS)
def update_settings(body: SettingsRequest) -> Settings:
    changes: settings.Changes = body.model_dump(exclude_unset=True)  # type: ignore[assignment]
    return Settings(**settings.as_dict(settings.update(account(), changes)))


def _meter(meter: MeterRow) -> Meter:
    return Meter.model_validate(meter)


@bp.get("/meters")
@operation((*USAGE_OR_ACCOUNT_KEY, *STAFF_KEY), "Metering", "Meters", MeterList, query=MeterQuery,
           permission=members.READ)
def list_meters(query: MeterQuery) -> MeterList:
    """Meters in the order they were created (the defaults first), or those that read
    `event_name`; a cursor is a meter's name."""
    found = [m for m in meter_defs.all_meters()
             if query.event_name is None or m.event_name == query.event_name]
    return MeterList.of(paginate_list(found, lambda m: m.name, **query.page()), _meter)


@bp.post("/meters")
@operation(STAFF_KEY, "Metering", "Add a meter", Meter, status=201, body=CreateMeterRequest,
           errors=(409,))
def create_meter(body: CreateMeterRequest) -> tuple[Meter, int]:
    meter = meter_defs.create_meter(staff_actor(), name=body.name, event_name=body.event_name,
                                    aggregation=body.aggregation, property=body.property,
                                    unit=body.unit)
    return _meter(meter), 201


@bp.get("/meters/<name>/usage")
@operation(USAGE_OR_ACCOUNT_KEY, "Metering", "A meter's series by day or hour", MeterUsage,
           query=MeterUsageQuery,
           permission=members.READ)
def meter_usage(name: str, query: MeterUsageQuery) -> MeterUsage:
    acct = account()
    meter = meter_defs.get_meter(name)
    period = metering.summary(acct).period
    start = query.from_ or period.start
    end = query.to or min(period.end, utcnow() + timedelta(hours=1))
    if end <= start:
        raise InvalidInput("to must be after from.", param="to")
    step = timedelta(hours=1) if query.granularity == "hour" else timedelta(days=1)
    if (end - start) / step > MAX_SERIES_POINTS:
        raise InvalidInput(f"Ask for at most {MAX_SERIES_POINTS:,} points; narrow from/to.",
                           param="from")
    points = metering.series(acct, meter, start, end, query.granularity)
    return MeterUsage(meter=meter.name, granularity=query.granularity, time_zone=acct.time_zone,
                      unit=meter.unit, data=[UsagePoint(start=t, value=v) for t, v in points])
