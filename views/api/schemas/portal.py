"""Stripe Customer Portal configurations and sessions, in Stripe's own shape (staff).

Every field of Stripe's `billing_portal.configuration` is taken when creating or updating
one, so what a GET answers can be posted back unchanged: the fields Stripe decides (`id`,
`object`, `application`, `created`, `livemode`, `updated`, `is_default`, `login_page.url`)
are accepted and left as they are. `headline` is Tally's shorthand for
`business_profile.headline`. The same models read Stripe's form encoding
(views/api/stripe_form.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, ConfigDict, Field

from services.billing import portal
from services.billing.portal import CANCEL_MODES, CUSTOMER_UPDATES, PRORATIONS
from views.api.schemas.common import Answer, ListOf, NotNull, PageQuery, Request, Says, fault
from views.api.schemas.plans import AbsoluteUrl

Enabled = Annotated[bool, Says("{param} must be true or false.")]
MaybeEnabled = Annotated[bool | None, NotNull(), Says("{param} must be true or false.")]
Text = Annotated[str | None, Field(max_length=5000), Says("{param} must be a string.")]
Url = Annotated[AbsoluteUrl | None, Says("{param} must be an absolute http(s) URL.")]
CANCEL_REASONS = ("customer_service", "low_quality", "missing_features", "other", "switched_service",
                  "too_complex", "too_expensive", "unused")


def _choices(*values: str) -> Any:
    return Says(f"{{param}} takes {', '.join(values)}.")


class FeatureRequest(Request):
    enabled: Enabled


class CustomerUpdateRequest(FeatureRequest):
    allowed_updates: Annotated[list[Literal[CUSTOMER_UPDATES]], Says(  # type: ignore[valid-type]
        f"allowed_updates takes {', '.join(CUSTOMER_UPDATES)}.", items=True)] = []


class PaymentMethodUpdateRequest(FeatureRequest):
    payment_method_configuration: Text = None


class CancellationReasonRequest(Request):
    enabled: Enabled
    options: Annotated[list[Literal[CANCEL_REASONS]] | None, NotNull(),  # type: ignore[valid-type]
                       _choices(*CANCEL_REASONS)] = None


class SubscriptionCancelRequest(FeatureRequest):
    mode: Annotated[Literal[CANCEL_MODES], Says(  # type: ignore[valid-type]
        "mode must be at_period_end or immediately.")] = "at_period_end"
    proration_behavior: Annotated[Literal["create_prorations", "none"] | None, NotNull(),
                                  _choices("create_prorations", "none")] = None
    cancellation_reason: Annotated[CancellationReasonRequest | None, NotNull(),
                                   Says("{param} must be an object.")] = None


class SubscriptionPauseRequest(Request):
    enabled: MaybeEnabled = None


class AdjustableQuantityRequest(Request):
    enabled: Enabled
    maximum: Annotated[int | None, Field(ge=1), Says("{param} must be a whole number.")] = None
    minimum: Annotated[int | None, Field(ge=0), Says("{param} must be a whole number.")] = None


class PortalProductRequest(Request):
    product: Annotated[str, Says("product must be a Stripe product id.")]
    prices: Annotated[list[str], Field(min_length=1), Says("prices must be a list of price ids.")]
    adjustable_quantity: Annotated[AdjustableQuantityRequest | None, NotNull(),
                                   Says("{param} must be an object.")] = None


class ConditionRequest(Request):
    type: Annotated[Literal["decreasing_item_amount", "shortening_interval"],
                    _choices("decreasing_item_amount", "shortening_interval")]


class ScheduleAtPeriodEndRequest(Request):
    conditions: Annotated[list[ConditionRequest], Says("{param} must be a list.")] = []


class SubscriptionUpdateRequest(FeatureRequest):
    proration_behavior: Annotated[Literal[PRORATIONS], Says(  # type: ignore[valid-type]
        f"proration_behavior takes {', '.join(PRORATIONS)}.")] = "none"
    default_allowed_updates: Annotated[
        list[Literal["price", "promotion_code", "quantity"]] | None, NotNull(),
        _choices("price", "promotion_code", "quantity")] = None
    products: Annotated[list[PortalProductRequest] | None, NotNull(),
                        Says("{param} must be a list.")] = None
    billing_cycle_anchor: Annotated[Literal["now", "unchanged"] | None,
                                    _choices("now", "unchanged")] = None
    schedule_at_period_end: Annotated[ScheduleAtPeriodEndRequest | None, NotNull(),
                                      Says("{param} must be an object.")] = None
    trial_update_behavior: Annotated[Literal["continue_trial", "end_trial"] | None, NotNull(),
                                     _choices("continue_trial", "end_trial")] = None


class PortalFeaturesRequest(Request):
    """Every feature Stripe has; any other is refused."""

    model_config = ConfigDict(extra="forbid")

    customer_update: CustomerUpdateRequest | None = None
    invoice_history: FeatureRequest | None = None
    payment_method_update: PaymentMethodUpdateRequest | None = None
    subscription_cancel: SubscriptionCancelRequest | None = None
    subscription_pause: SubscriptionPauseRequest | None = None
    subscription_update: SubscriptionUpdateRequest | None = None


class BusinessProfileRequest(Request):
    headline: Annotated[str | None, Field(max_length=60), Says(
        "headline must be a string of at most 60 characters.")] = None
    privacy_policy_url: Url = None
    terms_of_service_url: Url = None


LOGIN_PAGE = "login_page.enabled must be false: Tally opens portal sessions itself."


def _off(value: bool) -> bool:
    if value:
        raise fault(LOGIN_PAGE)
    return value


class LoginPageRequest(Request):
    enabled: Annotated[bool, AfterValidator(_off), Field(description="false"),
                       Says(LOGIN_PAGE)]


class PortalConfigurationRequest(Request):
    features: Annotated[PortalFeaturesRequest | None, NotNull(), Says("{param} must be an object.")] = None
    business_profile: Annotated[BusinessProfileRequest | None, NotNull(),
                                Says("{param} must be an object.")] = None
    headline: Annotated[str | None, NotNull(), Field(
        max_length=60, description="Tally's shorthand for business_profile.headline."), Says(
        "headline must be a string of at most 60 characters.")] = None
    default_return_url: AbsoluteUrl | None = None
    login_page: Annotated[LoginPageRequest | None, NotNull(), Says("{param} must be an object.")] = None
    metadata: Annotated[dict[str, Annotated[str | None, Field(max_length=500)]] | None, NotNull(),
                        Field(description="Stripe's metadata; an empty value removes a key."),
                        Says("metadata must be an object of strings.")] = None
    name: Annotated[str | None, Field(max_length=256), Says("name must be a string.")] = None
    active: Annotated[bool | None, NotNull(), Field(description="Updates only."), Says(
        "active must be true or false.")] = None
    is_default: Annotated[bool | None, Field(
        description="Stripe decides the default (the configuration saved in its Dashboard): "
                    "accepted, and left as it is."), Says("is_default must be true or false.")] = None

    def changes(self) -> portal.Changes:
        """The fields sent, for services/billing/portal.py (as Stripe spells them)."""
        sent = self.model_dump(exclude_unset=True, exclude={"is_default"})
        if self.features is not None:  # Stripe's own null fields of a GET are left as they are
            sent["features"] = self.features.model_dump(exclude_none=True)
        if self.business_profile is not None:  # a null headline clears it
            sent["business_profile"] = self.business_profile.model_dump(exclude_unset=True)
        return cast(portal.Changes, sent)


class PortalConfigurationCreateRequest(PortalConfigurationRequest):
    """Creating one: `features` is required, as at Stripe."""

    features: Annotated[PortalFeaturesRequest, Says(
        "{param} must be an object.", missing="features is required, such as "
                                              "{\"invoice_history\": {\"enabled\": true}}.")]


class PortalConfiguration(Answer):
    """Stripe's billing_portal.configuration object."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(examples=["bpc_1QxAbC"])
    object: Literal["billing_portal.configuration"] = "billing_portal.configuration"


class PortalConfigurationList(ListOf[PortalConfiguration]):
    url: str = Field(default="/v1/billing_portal/configurations", description="Stripe's list url.")


class PortalConfigurationQuery(PageQuery):
    active: bool | None = Field(default=None, description="Only active (true) or inactive (false).")
    is_default: bool | None = Field(default=None, description="Only the default, or only the others.")


class PortalSessionRequest(Request):
    customer: Annotated[str, Field(
        description="A Stripe customer id (cus_...) or a Tally customer id.", min_length=1,
        max_length=255, examples=["cus_Q3bT"]), Says("customer is required: a Stripe or Tally "
                                                      "customer id.")]
    return_url: AbsoluteUrl | None = None
    configuration: Annotated[str | None, NotNull(), Field(
        description="Default: the configuration Tally opens sessions with.",
        pattern="^bpc_[A-Za-z0-9_]{1,250}$"), Says("configuration must be a bpc_... id.")] = None
    locale: Annotated[str | None, NotNull(), Field(max_length=16, examples=["auto"]), Says(
        "locale must be a locale such as auto, en or fr-CA.")] = None


class PortalSession(Answer):
    """Stripe's billing_portal.session object."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(examples=["bps_1QxAbC"])
    object: Literal["billing_portal.session"] = "billing_portal.session"
    url: str
    return_url: str | None
    customer: str = Field(examples=["cus_Q3bT"])
    configuration: str = Field(examples=["bpc_1QxAbC"])
    created: int = Field(description="Unix seconds.")
    livemode: bool
    locale: str | None
