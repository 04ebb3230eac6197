"""The gate, event ingestion, usage and meters."""

from __future__ import annotations

from datetime import timedelta

from flask import jsonify, request

from models.base import utcnow
from services import usage as metering
from services.errors import InvalidInput
from services.pagination import paginate_list
from services.usage import meters as meter_defs
from services.usage import rating, settings
from views.api import (
    ACCOUNT_KEY,
    STAFF_KEY,
    USAGE_OR_ACCOUNT_KEY,
    account,
    bp,
    json_body,
    key_required,
    staff_actor,
)
from views.api.lists import list_response, page_args

MAX_SERIES_POINTS = 24 * 62  # two months of hours, or ~4 years of days


@bp.post("/authorize")
@key_required(*USAGE_OR_ACCOUNT_KEY)
def authorize():
    decision = metering.authorize(account(), json_body())
    body = {
        "allowed": True,
        "account_id": decision.account_id,
        "tier": decision.tier,
        "usage": {"current": decision.current, "limit": decision.limit},
        "remaining": decision.remaining,
    }
    if decision.duplicate:
        body["duplicate"] = True
    return jsonify(body)


@bp.post("/events")
@key_required(*USAGE_OR_ACCOUNT_KEY)
def events():
    result = metering.ingest(account(), json_body())
    return jsonify(accepted=result.accepted, duplicates=result.duplicates, rejected=result.rejected)


@bp.get("/billing/usage")
@key_required(*USAGE_OR_ACCOUNT_KEY)
def usage():
    summary = metering.summary(account())
    values: dict[str, int | None] = {}
    for m in summary.meters:
        values[m.meter.name] = m.current
        values[m.meter.name + "Limit"] = m.limit
    return jsonify(
        period=summary.period.label,
        period_start=summary.period.start.isoformat(),
        period_end=summary.period.end.isoformat(),
        time_zone=summary.period.time_zone,
        usage=values,
        spend=_spend_json(rating.spend(account(), summary.period)),
    )


def _spend_json(spend: rating.Spend) -> dict:
    return {"amount": spend.amount, "cap": spend.cap, "currency": spend.currency}


@bp.get("/billing/settings")
@key_required(*ACCOUNT_KEY)
def get_settings():
    return jsonify(settings.as_dict(account()))


@bp.post("/billing/settings")
@key_required(*ACCOUNT_KEY)
def update_settings():
    return jsonify(settings.as_dict(settings.update(account(), json_body())))


def _meter_json(meter) -> dict:
    return {"object": "meter", "name": meter.name, "event_name": meter.event_name,
            "aggregation": meter.aggregation, "property": meter.property, "unit": meter.unit}


@bp.get("/meters")
@key_required(*USAGE_OR_ACCOUNT_KEY)
def list_meters():
    """Meters in the order they were created (the defaults first); a cursor is a meter's name."""
    return list_response(paginate_list(meter_defs.all_meters(), lambda m: m.name, **page_args()),
                         _meter_json)


@bp.post("/meters")
@key_required(*STAFF_KEY)
def create_meter():
    body = json_body()
    meter = meter_defs.create_meter(
        staff_actor(), name=body.get("name"), event_name=body.get("event_name"),
        aggregation=body.get("aggregation"), property=body.get("property"),
        unit=body.get("unit", ""))
    return jsonify(_meter_json(meter)), 201


@bp.get("/meters/<name>/usage")
@key_required(*USAGE_OR_ACCOUNT_KEY)
def meter_usage(name: str):
    acct = account()
    meter = meter_defs.get_meter(name)
    granularity = request.args.get("granularity", "day")
    period = metering.summary(acct).period
    start = metering.parse_timestamp(request.args["from"], "from") if "from" in request.args else period.start
    end = metering.parse_timestamp(request.args["to"], "to") if "to" in request.args else min(
        period.end, utcnow() + timedelta(hours=1))
    if end <= start:
        raise InvalidInput("to must be after from.", param="to")
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    if (end - start) / step > MAX_SERIES_POINTS:
        raise InvalidInput(f"Ask for at most {MAX_SERIES_POINTS:,} points; narrow from/to.",
                           param="from")
    points = metering.series(acct, meter, start, end, granularity)
    return jsonify(object="list", meter=meter.name, granularity=granularity,
                   time_zone=acct.time_zone, unit=meter.unit,
                   data=[{"start": t.isoformat(), "value": v} for t, v in points])
