"""The gate, usage events, usage, settings and meters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from models.usage import AGGREGATIONS
from services.usage import meters, settings
from services.usage.events import MAX_BATCH
from views.api.schemas.common import (
    AccountId,
    Answer,
    Currency,
    Limit,
    ListOf,
    Money,
    NotNull,
    PageQuery,
    Query,
    Request,
    Says,
    Time,
    Timestamp,
    fault,
)

EVENT_ID = Says("id must be a string of 1 to 255 characters (your idempotency key).")
# What an event id promises (the API document says so for each event id field).
EVENT_ID_KEPT = ("Idempotency key per account: a repeat counts once for as long as Tally keeps "
                 "the event, at least TALLY_EVENT_RETENTION_DAYS (400 unless set) after it "
                 "arrived. That is always longer than the 35 days an event may be late, so a "
                 "retried event (same id and timestamp) never counts twice.")
EVENT_NAME = Says("event_name must be a string of 1 to 100 characters.")
PROPERTIES = Says("properties must be a JSON object.")


class AuthorizeRequest(Request):
    id: Annotated[str | None, Field(
        description="Your request id: a retry with the same id is answered again, counted once "
                    "(for as long as Tally keeps the call's event: at least "
                    "TALLY_EVENT_RETENTION_DAYS, 400 unless set).",
        max_length=255, examples=["req_123"]), EVENT_ID] = None
    event_name: Annotated[str, Field(description="Default api_call.", min_length=1, max_length=100,
                                     examples=["api_call"]), EVENT_NAME] = "api_call"
    quantity: Annotated[int, Field(description="Default 1.", ge=1, le=10**9), Says(
        "quantity must be a whole number from 1 to 1,000,000,000.")] = 1
    properties: Annotated[dict[str, Any] | None, Field(
        description="Event properties for the meters."), PROPERTIES] = None


class AuthorizationUsage(Answer):
    """The event's first meter this period."""

    current: int = Field(ge=0)
    limit: Limit


class Authorization(Answer):
    allowed: Literal[True] = True
    account_id: AccountId
    tier: str = Field(examples=["free"])
    usage: AuthorizationUsage
    remaining: int | None = Field(ge=0)
    duplicate: Literal[True] | None = Field(
        None, description="This request id was seen before; nothing was counted.")


class Event(Request):
    id: Annotated[str, Field(description=EVENT_ID_KEPT,
                             min_length=1, max_length=255, examples=["evt_0001"]), EVENT_ID]
    event_name: Annotated[str, Field(min_length=1, max_length=100, examples=["llm_completion"]),
                          EVENT_NAME]
    timestamp: Annotated[Timestamp | None, Field(
        description="RFC 3339; default now; at most 35 days old or 5 minutes ahead.")] = None
    properties: Annotated[dict[str, Any] | None, Field(
        description='e.g. {"tokens": 812}; at most TALLY_MAX_EVENT_PROPERTIES_BYTES (4 KiB) as '
                    'compact JSON.', examples=[{"tokens": 812}]), PROPERTIES] = None


class EventBatch(Request):
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH), Says(
        f"events must be a list of 1 to {MAX_BATCH:,} events.")]


def event_shape(body: dict[str, Any]) -> type[Request]:
    """`{"events": [...]}` is a batch; any other object is one event."""
    return EventBatch if "events" in body else Event


class Rejection(Answer):
    index: int = Field(ge=0)
    id: str
    code: str
    message: str


class IngestResult(Answer):
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: list[Rejection] = Field(description=(
        "Events refused one by one, and not stored; the rest count. Codes: unknown_event_name "
        "(no meter reads it), properties_too_large, missing_property, invalid_property, "
        "timestamp_too_old, timestamp_in_future."))


class UsageValues(Answer):
    """Each meter's value this period and `<meter>Limit` (null: unlimited); custom meters too.
    The keys are meter names (the generic billing API's `apiCalls`, `apiCallsLimit`, ...)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, int | None]

    apiCalls: int = Field(ge=0)
    apiCallsLimit: Limit
    llmTokens: int = Field(ge=0)
    llmTokensLimit: Limit
    storage: int = Field(ge=0)
    storageLimit: Limit


class Spend(Answer):
    amount: int = Field(description="Rated usage this period (minor units).", ge=0)
    cap: int | None = Field(description="The monthly spend cap; null for none.", ge=0)
    currency: Currency


class Usage(Answer):
    period: str = Field(examples=["2026-01"])
    period_start: Time
    period_end: Time
    time_zone: str = Field(examples=["UTC"])
    usage: UsageValues
    spend: Spend


class Settings(Answer):
    time_zone: str = Field(examples=["Europe/Paris"])
    spend_cap: Money | None
    currency: Currency
    alert_thresholds: list[int] = Field(examples=[[80, 100]])


class SettingsRequest(Request):
    time_zone: Annotated[str | None, NotNull(), Field(
        description="IANA time zone name.", min_length=1, examples=["Europe/Paris"]), Says(
        "time_zone must be an IANA name such as Europe/Paris.")] = None
    spend_cap: Annotated[int | None, Field(
        description="Monthly cap in minor units; null for none.", ge=0, le=settings.MAX_SPEND_CAP),
        Says("spend_cap must be a whole number of minor units (or null for none).")] = None
    alert_thresholds: Annotated[list[Annotated[int, Field(
        ge=settings.THRESHOLD_MIN, le=settings.THRESHOLD_MAX)]] | None, NotNull(), Field(
        description="Percentages of each limit.", max_length=settings.MAX_THRESHOLDS), Says(
        "alert_thresholds must be a list of up to 10 percentages (1-1000).", items=True)] = None


class Meter(Answer):
    object: Literal["meter"] = "meter"
    name: str = Field(examples=["llmTokens"])
    event_name: str = Field(examples=["llm_completion"])
    aggregation: Literal[AGGREGATIONS]  # type: ignore[valid-type]
    property: str | None = Field(examples=["tokens"])
    unit: str = Field(examples=["tokens"])


class MeterList(ListOf[Meter]):
    pass


class MeterQuery(PageQuery):
    event_name: str | None = Field(default=None, description="Only the meters that read this event "
                                                             "(Togai: a schema's usage meters).")


class CreateMeterRequest(Request):
    name: Annotated[str, Field(pattern=meters.NAME_PATTERN, examples=["imagesGenerated"]), Says(
        "name must start with a letter and use letters, digits or _ (64 characters at most).")]
    event_name: Annotated[str, Field(min_length=1, max_length=100, examples=["image_generated"]),
                          EVENT_NAME]
    aggregation: Annotated[Literal[AGGREGATIONS], Says(  # type: ignore[valid-type]
        f"aggregation must be one of {', '.join(AGGREGATIONS)}.")]
    property: Annotated[str | None, Field(
        description="Needed by sum, max, unique_count and latest.", max_length=100), Says(
        "property must be a string of at most 100 characters.")] = None
    unit: Annotated[str, Field(max_length=32), Says(
        "unit must be a string of at most 32 characters.")] = ""

    @model_validator(mode="after")
    def _property_when_needed(self) -> CreateMeterRequest:
        if self.aggregation != "count" and not self.property:
            raise fault(f"A {self.aggregation} meter needs the property it reads.", param="property")
        return self


class MeterUsageQuery(Query):
    from_: Timestamp | None = Field(default=None, alias="from",
                                    description="Default: the start of this period.")
    to: Timestamp | None = Field(default=None, description="Default: now (within this period).")
    granularity: Annotated[Literal["day", "hour"], Field(description="Default day."),
                           Says("granularity must be day or hour.")] = "day"


class UsagePoint(Answer):
    start: Time
    value: int


class MeterUsage(Answer):
    object: Literal["list"] = "list"
    meter: str
    granularity: Literal["day", "hour"]
    time_zone: str
    unit: str
    data: list[UsagePoint]
