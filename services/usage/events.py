"""Usage events as they arrive: their shape, checked before anything is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.errors import InvalidInput

MAX_BATCH = 1000
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


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
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        parsed = EARLIEST - timedelta(days=1)
    if not EARLIEST <= parsed < LATEST:  # local days and hours of these stay within datetime's range
        raise InvalidInput(f"{param} must be from the year 1900 to 8999.", param=param)
    return parsed


def parse_event(raw: object, index: int | None, now: datetime) -> EventIn:
    """One event's shape; a fault here is a 400 for the whole request."""

    def where(name: str) -> str:
        return name if index is None else f"events[{index}].{name}"

    if not isinstance(raw, dict):
        raise InvalidInput("Each event must be a JSON object.",
                           param="body" if index is None else f"events[{index}]")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
        raise InvalidInput("id must be a string of 1 to 255 characters (your idempotency key).",
                           param=where("id"))
    name = raw.get("event_name")
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise InvalidInput("event_name must be a string of 1 to 100 characters.",
                           param=where("event_name"))
    properties = raw.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidInput("properties must be a JSON object.", param=where("properties"))
    timestamp = raw.get("timestamp")
    timestamp = now if timestamp is None else parse_timestamp(timestamp, where("timestamp"))
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
