"""What every /v1 declaration is built from: the base models, the value types (money,
currencies, timestamps), the list envelope with its query, and the error answers.

A request model (`Request`, `Query`) is strict: 2500 is money, "2500", 2500.0 and true are
not; unknown fields are ignored. An answer model (`Answer`) leaves out a field that
defaults to None while it is None (`duplicate`, `lines`, `param`); every other field is
always present, so the document marks it required. views/api/declare.py turns a failed
validation into Tally's 400, using a field's `Says` messages where it has them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, Self, TypedDict, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, PydanticUseDefault, core_schema

from services.money import SUPPORTED_CURRENCIES
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from views.api.json_schema import without_null

EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
# A Stripe object id with its prefix: Stripe answers anything else with a 404 (a 502 here).
STRIPE_ID = "^{prefix}_[A-Za-z0-9_]{{1,250}}$"


class Says:
    """A field's own messages for a bad value (`invalid`) and a missing one (`missing`),
    in place of the generic ones (views/api/invalid.py). With `items`, a bad item of a
    list is the list's fault: `alert_thresholds`, not `alert_thresholds[0]`."""

    def __init__(self, invalid: str, missing: str | None = None, *, items: bool = False) -> None:
        self.invalid = invalid
        self.missing = missing
        self.items = items


def fault(message: str, *, param: str | None = None) -> PydanticCustomError:
    """A validator's refusal, in Tally's words; `{param}` becomes the field's name. A
    check of the whole object names the field at fault with `param`."""
    return PydanticCustomError("tally", "{message}", {"message": message, "param": param})


def _refuse_null(value: object) -> object:
    if value is None:
        raise PydanticCustomError("not_null", "null is not allowed")
    return value


class NotNull:
    """An optional field that may be left out, but not sent as null (`Annotated[T | None,
    NotNull()] = None`): the view reads None for "not given", the document shows T."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_refuse_null, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return without_null(handler(schema))


# Base models -------------------------------------------------------------------------


class Request(BaseModel):
    """A JSON body: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class Query(BaseModel):
    """Query parameters: text, read into the declared types."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _is_none(value: object) -> bool:
    return value is None


class Answer(BaseModel):
    """An answer body. A field that defaults to None is left out while it is None."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        absent = [info for info in cls.model_fields.values()
                  if not info.is_required() and info.default is None and info.exclude_if is None]
        for info in absent:
            info.exclude_if = _is_none  # pydantic-core leaves the field out: no Python per answer
        if absent:
            cls.model_rebuild(force=True)


# Values --------------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.isoformat()


Time = Annotated[datetime, PlainSerializer(_iso, return_type=str), WithJsonSchema(
    {"type": "string", "format": "date-time", "description": "RFC 3339 timestamp, UTC.",
     "examples": ["2026-01-31T09:30:00+00:00"]})]


def _rfc3339(value: object) -> datetime:
    if not isinstance(value, str):
        raise fault("timestamp must be an RFC 3339 string such as 2026-11-23T10:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise fault(f"{value!r} is not an RFC 3339 timestamp.") from None
    if parsed.tzinfo is None:
        raise fault("timestamp needs a time zone offset (Z or +hh:mm).")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        parsed = EARLIEST - timedelta(days=1)
    if not EARLIEST <= parsed < LATEST:  # local days and hours of these stay within datetime's range
        raise fault("{param} must be from the year 1900 to 8999.")
    return parsed


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339), WithJsonSchema(
    {"type": "string", "format": "date-time", "description": "RFC 3339, with a time zone offset."})]
Money = Annotated[int, Field(description="Minor units of the currency (cents): 2500 is 25.00.",
                             examples=[2500])]
Spendable = Annotated[int, Field(
    description="Spendable credit, in minor units: the posted ledger balance less rated usage "
                "not yet posted. The same figure as `balance` in GET /v1/billing/balance.",
    examples=[2500])]
PostedBalance = Annotated[int, Field(
    description="The ledger balance (the sum of posted entries), in minor units.", examples=[2700])]
PendingUsage = Annotated[int, Field(
    description="Rated usage not yet posted to the ledger, in minor units.", ge=0, examples=[200])]
Currency = Annotated[str, Field(description="ISO 4217 code, lower case.", min_length=3, max_length=3,
                                examples=["usd"])]
NewCurrency = Annotated[str, Says(
    "currency must be an ISO 4217 code Tally can charge in, such as usd, eur or gbp."),
    WithJsonSchema({"type": "string", "enum": sorted(SUPPORTED_CURRENCIES),
                    "description": "ISO 4217 code, lower case (upper case is read as lower): one "
                                   "Stripe charges in and whose minor unit Tally knows."})]
AccountId = Annotated[str, Field(description="Account id.", examples=["acct_8Jx2mQv0TzLp3RkYb7Wn"])]
Limit = Annotated[int | None, Field(description="The limit; null means unlimited.", ge=0)]


# Lists ---------------------------------------------------------------------------------

Item = TypeVar("Item")


class ListOf(Answer, Generic[Item]):
    """Stripe's list envelope: `{object: "list", data: [...], has_more}`."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool = Field(description="True when another page follows (pass the last id as "
                                       "starting_after).")

    @classmethod
    def of(cls, page: Page[Any], render: Callable[[Any], Item]) -> Self:
        return cls(data=[render(item) for item in page.items], has_more=page.has_more)


def _digits(value: object) -> object:
    """A whole number written in ASCII digits ("²" is a digit to str.isdigit, not to int)."""
    if value == "":
        raise PydanticUseDefault()
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError("int_parsing", "not a whole number")
    return value


class PageArgs(TypedDict):
    limit: int
    starting_after: str | None
    ending_before: str | None


class PageQuery(Query):
    """`limit`, `starting_after`, `ending_before` (services/pagination.py)."""

    limit: Annotated[int, BeforeValidator(_digits), Field(
        ge=1, le=MAX_LIMIT, description=f"How many items, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})."),
        Says(f"limit must be a whole number from 1 to {MAX_LIMIT}.")] = DEFAULT_LIMIT
    starting_after: str | None = Field(default=None, description=(
        "The id of the last item of a page (a name for meters and plans): the page after it."))
    ending_before: str | None = Field(default=None, description=(
        "The id of the first item of a page (a name for meters and plans): the page before it."))

    def page(self) -> PageArgs:
        return {"limit": self.limit, "starting_after": self.starting_after or None,
                "ending_before": self.ending_before or None}


# Errors --------------------------------------------------------------------------------


class Error(Answer):
    """Every error on every /v1 path has this shape."""

    error: str = Field(description="A short title.", examples=["Invalid request"])
    code: str = Field(description="Machine-readable code; branch on this.",
                      examples=["invalid_request"])
    message: str = Field(description="What went wrong and what to do.",
                         examples=["amount is required."])
    param: str | None = Field(default=None, description="The one field at fault, when there is one.",
                              examples=["amount"])


class StripeErrorDetail(Answer):
    type: Literal["api_error", "card_error", "invalid_request_error"] = Field(
        description="Stripe's error type.")
    code: str = Field(description="Tally's machine-readable code.", examples=["resource_missing"])
    message: str
    param: str | None = Field(default=None, description="The field at fault, as Stripe names it "
                                                        "(`features[invoice_history][enabled]`).")


class StripeError(Answer):
    """Every error at Stripe's own paths (`/v1/billing_portal/...`) has Stripe's shape, so
    Stripe's libraries raise their usual errors (InvalidRequestError, AuthenticationError, ...)."""

    error: StripeErrorDetail


class UsageFigure(Answer):
    """The meter's use and limit (with usage_limit_exceeded)."""

    current: int = Field(ge=0, examples=[1000])
    limit: int | None = Field(ge=0, examples=[1000])


class PaymentRequiredError(Error):
    """402: over a plan limit or out of prepaid credit (nothing was recorded), a card was
    declined (nothing was charged), or a card's first payment needs 3-D Secure
    (`requires_action`; nothing is charged until it is done)."""

    model_config = ConfigDict(json_schema_extra={"allOf": [
        {"if": {"properties": {"code": {"const": "usage_limit_exceeded"}}, "required": ["code"]},
         "then": {"required": ["usage", "upgrade_url"]}},
        {"if": {"properties": {"code": {"const": "requires_action"}}, "required": ["code"]},
         "then": {"required": ["requires_action", "payment_intent_client_secret",
                               "payment_intent_id", "subscription_id"]}},
    ]})

    error: str = Field(examples=["Usage limit exceeded"])
    code: str = Field(description="`usage_limit_exceeded` (a plan limit, prepaid credit or the "
                                  "spend cap), a card error such as `card_declined`, or "
                                  "`requires_action` (3-D Secure for a subscription's first payment).",
                      examples=["usage_limit_exceeded"])
    message: str = Field(examples=["API call limit reached for current period"])
    usage: UsageFigure | None = None
    upgrade_url: str | None = Field(default=None, description="Where to send the user to upgrade (with "
                                    "usage_limit_exceeded).", json_schema_extra={"format": "uri"},
                                    examples=["https://tally.example.com/plans"])
    requires_action: Literal[True] | None = Field(default=None, description=(
        "With requires_action (POST /v1/billing/setup and /setup/confirm): the bank asks for 3-D Secure."))
    payment_intent_client_secret: str | None = Field(default=None, description=(
        "With requires_action: confirm it with Stripe.js confirmCardPayment."),
        examples=["pi_3Q..._secret_..."])
    payment_intent_id: str | None = Field(default=None, description=(
        "With requires_action: the first payment's PaymentIntent."), examples=["pi_3Q..."])
    subscription_id: str | None = Field(default=None, description=(
        "With requires_action: pass it to POST /v1/billing/setup/confirm."), examples=["sub_1Q..."])
