"""Plans, the subscription, Stripe Checkout and the Customer Portal session.

The camelCase names here are the generic billing API's (`priceId`, `successUrl`,
`cancelUrl`, `returnUrl`, `currentPeriodStart`, ...): its clients call them so.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from services.billing import plans
from views.api.schemas.common import (
    STRIPE_ID,
    Answer,
    Currency,
    Limit,
    ListOf,
    Money,
    Request,
    Says,
    Time,
    fault,
)

MAX_URL_LENGTH = 2000


def _paid_plans(schema: dict[str, Any]) -> None:
    paid = [p.name for p in plans.all_plans() if p.price is not None]
    if paid:
        schema.update(enum=paid)


def _absolute_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fault("{param} must be an absolute http(s) URL.")
    return url


def url_field(description: str = "Absolute http(s) URL.") -> Any:
    return Field(description=description, max_length=MAX_URL_LENGTH,
                 json_schema_extra={"format": "uri"}, examples=["https://example.com/billing"])


AbsoluteUrl = Annotated[str, AfterValidator(_absolute_url), url_field(),
                        Says("{param} must be an absolute http(s) URL.")]


class PlanPrice(Answer):
    amount: Money
    currency: Currency
    interval: Literal["month", "year"]
    priceId: str | None = Field(description="The Stripe Price to pass to /v1/billing/checkout "
                                            "as `priceId` (the generic billing API's name).")


class Plan(Answer):
    object: Literal["plan"] = "plan"
    name: str = Field(examples=["pro"])
    limits: dict[str, Limit] = Field(description="apiCalls, llmTokens, storage, "
                                                 "requestsPerMinute, lifetimeApiCalls; null is unlimited.")
    price: PlanPrice | None
    current: bool = Field(description="True for the account's plan.")


class PlanList(ListOf[Plan]):
    pass


class Subscription(Answer):
    """The subscription (the generic billing API's shape); `status` none and `id` null
    when there is none."""

    id: str | None
    plan: str = Field(examples=["pro"])
    status: str = Field(description="Stripe's status, or none.", examples=["active"])
    currentPeriodStart: Time | None
    currentPeriodEnd: Time | None
    cancelAtPeriodEnd: bool
    cancelAt: Time | None


class SetupRequest(Request):
    payment_method_id: Annotated[str, Field(pattern=STRIPE_ID.format(prefix="pm"),
                                            examples=["pm_card_visa"]), Says(
        "payment_method_id must be a PaymentMethod id (pm_...).")]
    plan: Annotated[str, Field(description="Default pro. A plan with a price.",
                               json_schema_extra=_paid_plans), Says(
        "plan must be the name of a paid plan, such as pro.")] = "pro"


class Setup(Answer):
    tier: str
    call_limit: Limit
    subscription: Subscription
    message: str


class SetupConfirmRequest(Request):
    subscription_id: Annotated[str, Field(
        pattern=STRIPE_ID.format(prefix="sub"),
        description="The subscription_id of setup's 402 requires_action.",
        examples=["sub_1QxAbC"]), Says(
        "subscription_id must be the subscription id (sub_...) that POST /v1/billing/setup answered.")]


class CancelResult(Answer):
    success: Literal[True] = True
    cancelAt: Time | None
    subscription: Subscription


class ResumeResult(Answer):
    success: Literal[True] = True
    subscription: Subscription


class CheckoutRequest(Request):
    priceId: Annotated[str, Field(description="The Stripe price of a paid plan (or the plan's "
                                              "name), from GET /v1/billing/plans.",
                                  examples=["price_1QxAbC"]), Says(
        "priceId must be the Stripe price of a paid plan (see GET /v1/billing/plans).")]
    successUrl: AbsoluteUrl
    cancelUrl: AbsoluteUrl


class PortalRequest(Request):
    returnUrl: AbsoluteUrl


class Url(Answer):
    url: str = Field(description="Send the user here.", json_schema_extra={"format": "uri"})
