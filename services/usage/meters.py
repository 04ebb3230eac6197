"""Meter definitions and what one event contributes to each meter."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select

from extensions import db
from models.usage import DEFAULT_METERS, Meter
from services.errors import Conflict, NotFound
from services.staff import audit

# The default meters' labels: in API messages ("API call limit reached ..."), and on every
# page (Plans, Usage, dashboard, alerts). Meters staff add show their name.
_LABELS = {"apiCalls": "API call", "llmTokens": "LLM token", "storage": "Storage"}
_DISPLAY_LABELS = {"apiCalls": "API calls", "llmTokens": "LLM tokens", "storage": "Storage"}
NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_]{0,63}$"  # a meter's name (checked by POST /v1/meters)
# The most one event may add: a quadrillion (a petabyte, a quadrillion tokens). Counters
# are BIGINT (to 9.2 quintillion), so sums of real usage stay far from overflowing, and
# one mistyped value cannot price an account into quintillions of debt.
MAX_VALUE = 10**15


def label(meter: Meter) -> str:
    """How API messages name a meter: "API call limit reached ..."."""
    return _LABELS.get(meter.name, meter.name)


def display_label(meter: Meter | str) -> str:
    """How pages name a meter (or a meter name): "API calls", "LLM tokens", "Storage".
    Meters staff add have no label and show their name."""
    name = meter if isinstance(meter, str) else meter.name
    return _DISPLAY_LABELS.get(name, name)


def default_unit(name: str) -> str:
    """The unit of a default meter ("calls", "bytes"), for pages that show plan limits
    without reading the meters table; "" for any other name."""
    return next((d[4] for d in DEFAULT_METERS if d[0] == name), "")


def lifetime_limit_name(meter_name: str) -> str:
    """`apiCalls` → `lifetimeApiCalls`, the plan key of the all-time limit."""
    return "lifetime" + meter_name[:1].upper() + meter_name[1:]


# Meters change rarely (staff add one), and every gate call and event batch reads them,
# so each app process keeps them for a few seconds: a new meter reaches the worker that
# created it at once, and every other worker within CACHE_SECONDS.
CACHE_SECONDS = 5.0
_CACHE = "tally.meters"


def all_meters() -> list[Meter]:
    """Every meter. The objects are shared by requests
    (detached from any session): read them, never change them."""
    cached = current_app.extensions.get(_CACHE)
    if cached is not None and cached[0] > time.monotonic():
        fresh: list[Meter] = cached[1]
        return fresh
    meters = _load_meters()
    for meter in meters:
        db.session.expunge(meter)
    current_app.extensions[_CACHE] = (time.monotonic() + CACHE_SECONDS, meters)
    return meters


def _forget() -> None:
    current_app.extensions.pop(_CACHE, None)


def _load_meters() -> list[Meter]:
    return list(db.session.execute(select(Meter).order_by(Meter.created_at, Meter.name)).scalars())


def meters_for_event(event_name: str) -> list[Meter]:
    """The meters that read events of this name."""
    return [m for m in all_meters() if m.event_name == event_name]


def get_meter(name: str) -> Meter:
    """The meter of this name, or a 404."""
    for meter in all_meters():
        if meter.name == name:
            return meter
    raise NotFound(f"No meter named {name!r}.", code="unknown_meter", param="name")


def create_meter(actor: audit.Actor, *, name: str, event_name: str, aggregation: str,
                 property: str | None = None, unit: str = "") -> Meter:
    """Add a meter, audited like every other staff action (one transaction). The shape of
    each value (a name matching NAME_PATTERN, one of AGGREGATIONS, a property for any but
    count) is the caller's to check; a name in use is a 409 here."""
    if any(m.name == name for m in all_meters()):
        raise Conflict(f"A meter named {name!r} already exists.", code="meter_exists", param="name")
    meter = Meter(name=name, event_name=event_name, aggregation=aggregation,
                  property=property if aggregation != "count" else property or None, unit=unit)
    db.session.add(meter)
    db.session.flush()
    audit.record(actor, "meter.create", meta={"meter_id": meter.id, "name": meter.name},
                 after={"event_name": meter.event_name, "aggregation": meter.aggregation,
                        "property": meter.property, "unit": meter.unit})
    _forget()
    return meter


@dataclass(frozen=True)
class Contribution:
    meter: Meter
    value: int  # count/sum: amount to add; max/latest: the reading; unique_count: 1
    unique_hash: str | None = None


class Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _integer(properties: dict[str, Any], name: str, *, default: int | None = None) -> int:
    if name not in properties:
        if default is not None:
            return default
        raise Rejected("missing_property", f"properties.{name} is required by a meter.")
    value = properties[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VALUE:
        raise Rejected("invalid_property",
                       f"properties.{name} must be a whole number from 0 to {MAX_VALUE:,}.")
    return value


def check_properties_size(properties: dict[str, Any]) -> None:
    """Rejected when `properties`, as compact JSON, is over MAX_EVENT_PROPERTIES_BYTES
    (TALLY_MAX_EVENT_PROPERTIES_BYTES): an event is stored with its properties, so this
    bounds what one event can cost on disk."""
    limit = current_app.config["MAX_EVENT_PROPERTIES_BYTES"]
    try:
        size = len(json.dumps(properties, separators=(",", ":"), ensure_ascii=False)
                   .encode("utf-8", "surrogatepass"))
    except RecursionError:
        size = limit + 1
    if size > limit:
        raise Rejected("properties_too_large",
                       f"properties must be at most {limit:,} bytes as JSON (this is {size:,}); "
                       "nothing was stored.")


def contributions(meters: list[Meter], properties: dict[str, Any]) -> list[Contribution]:
    """What one event adds to each of its meters; Rejected if a property is unusable.

    `count` meters count events, weighted by an optional whole-number `quantity`.
    """
    result = []
    for meter in meters:
        if meter.aggregation == "count":
            result.append(Contribution(meter, _integer(properties, "quantity", default=1)))
        elif meter.aggregation == "unique_count":
            prop = meter.property or ""
            if prop not in properties or properties[prop] is None:
                raise Rejected("missing_property", f"properties.{prop} is required by a meter.")
            digest = hashlib.sha256(json.dumps(properties[prop], sort_keys=True).encode()).hexdigest()
            result.append(Contribution(meter, 1, digest))
        else:
            result.append(Contribution(meter, _integer(properties, meter.property or "")))
    return result
