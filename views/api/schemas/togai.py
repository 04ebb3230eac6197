"""Togai's usage event ingestion bodies, for POST /v1/events with a staff key.

`{"event": {...}}` or `{"events": [...]}` (up to 500), each event `{id, schemaName,
accountId, timestamp, attributes, dimensions}`: `schemaName` is Tally's `event_name`,
`accountId` the Tally account, `attributes` (a list of `{name, value, unit?}` or an object
of name -> value) and `dimensions` (an object of strings) become the event's `properties`
(an attribute wins over a dimension of the same name). A value is a number or a numeric
string; a whole value (`12`, `"12"`, `12.0`) is read as the whole number meters count.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from services.usage.events import EventIn
from views.api.schemas.common import Request, Says, Timestamp, fault
from views.api.schemas.metering import EVENT_ID_KEPT

MAX_TOGAI_BATCH = 500
NUMBER = "{param} must be a number or a numeric string."


def _number(value: int | float | str) -> int | float:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise fault(NUMBER) from None
    if not number.is_finite():
        raise fault(NUMBER)
    return int(number) if number == number.to_integral_value() else float(number)


Number = Annotated[int | float | str, AfterValidator(_number), Field(
    description="A number, or a numeric string such as \"12.5\".", examples=[812]), Says(NUMBER)]


class Attribute(Request):
    name: Annotated[str, Field(min_length=1, max_length=100, examples=["tokens"]), Says(
        "name must be a string of 1 to 100 characters.")]
    value: Number
    unit: Annotated[str | None, Field(max_length=32, examples=["tokens"]), Says(
        "unit must be a string of at most 32 characters.")] = None


class TogaiEvent(Request):
    id: Annotated[str, Field(description=EVENT_ID_KEPT,
                             min_length=1, max_length=255, examples=["evt_0001"]), Says(
        "id must be a string of 1 to 255 characters (your idempotency key).")]
    schemaName: Annotated[str, Field(description="The event name meters read (Tally's event_name).",
                                     min_length=1, max_length=100, examples=["llm_completion"]),
                          Says("schemaName must be a string of 1 to 100 characters.")]
    accountId: Annotated[str, Field(description="The Tally account the usage is for.", min_length=1,
                                    max_length=64, examples=["acct_8Jx2mQv0TzLp3RkYb7Wn"]), Says(
        "accountId must be an account id.")]
    timestamp: Annotated[Timestamp | None, Field(
        description="RFC 3339; default now; at most 35 days old or 5 minutes ahead.")] = None
    attributes: Annotated[list[Attribute] | dict[str, Number] | None, Says(
        "attributes must be a list of {name, value, unit?} or an object of name -> number.")] = None
    dimensions: Annotated[dict[str, Annotated[str, Field(max_length=255)]] | None, Says(
        "dimensions must be an object of strings.")] = None

    def properties(self) -> dict[str, Any]:
        """Tally's `properties`: the dimensions, then the attributes by name."""
        properties: dict[str, Any] = dict(self.dimensions or {})
        if isinstance(self.attributes, list):
            properties.update({a.name: a.value for a in self.attributes})
        elif self.attributes:
            properties.update(self.attributes)
        return properties


class TogaiSingle(Request):
    event: Annotated[TogaiEvent, Says("event must be an object.")]


class TogaiBatch(Request):
    events: Annotated[list[TogaiEvent], Field(min_length=1, max_length=MAX_TOGAI_BATCH), Says(
        f"events must be a list of 1 to {MAX_TOGAI_BATCH} events.")]


def togai_shape(body: dict[str, Any]) -> type[Request]:
    """`{"events": [...]}` is a batch; any other object is `{"event": {...}}`."""
    return TogaiBatch if "events" in body else TogaiSingle


def togai_events(body: TogaiSingle | TogaiBatch, now: Any) -> list[tuple[str, EventIn]]:
    """Each event with its account, as services/usage takes them."""
    batch = body.events if isinstance(body, TogaiBatch) else [body.event]
    return [(e.accountId, EventIn(i, e.id, e.schemaName, e.timestamp or now, e.properties()))
            for i, e in enumerate(batch)]


