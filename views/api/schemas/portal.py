"""Stripe Customer Portal configurations, in Stripe's own shape (staff)."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from pydantic import ConfigDict, Field

from services.billing import portal
from services.billing.portal import CANCEL_MODES, CUSTOMER_UPDATES, PRORATIONS
from views.api.schemas.common import Answer, ListOf, NotNull, Request, Says
from views.api.schemas.plans import AbsoluteUrl

Enabled = Annotated[bool, Says("{param} must be true or false.")]


class FeatureRequest(Request):
    enabled: Enabled


class CustomerUpdateRequest(FeatureRequest):
    allowed_updates: Annotated[list[Literal[CUSTOMER_UPDATES]], Says(  # type: ignore[valid-type]
        f"allowed_updates takes {', '.join(CUSTOMER_UPDATES)}.", items=True)] = []


class SubscriptionCancelRequest(FeatureRequest):
    mode: Annotated[Literal[CANCEL_MODES], Says(  # type: ignore[valid-type]
        "mode must be at_period_end or immediately.")] = "at_period_end"


class SubscriptionUpdateRequest(FeatureRequest):
    proration_behavior: Annotated[Literal[PRORATIONS], Says(  # type: ignore[valid-type]
        f"proration_behavior takes {', '.join(PRORATIONS)}.")] = "none"


class PortalFeaturesRequest(Request):
    """Stripe's features that Tally sets; any other is refused."""

    model_config = ConfigDict(extra="forbid")

    customer_update: CustomerUpdateRequest | None = None
    invoice_history: FeatureRequest | None = None
    payment_method_update: FeatureRequest | None = None
    subscription_cancel: SubscriptionCancelRequest | None = None
    subscription_update: SubscriptionUpdateRequest | None = None


class PortalConfigurationRequest(Request):
    features: Annotated[PortalFeaturesRequest | None, NotNull(), Says("{param} must be an object.")] = None
    headline: Annotated[str | None, NotNull(), Field(max_length=60), Says(
        "headline must be a string of at most 60 characters.")] = None
    default_return_url: AbsoluteUrl | None = None
    active: Annotated[bool | None, NotNull(), Field(description="Updates only."), Says(
        "active must be true or false.")] = None

    def changes(self) -> portal.Changes:
        """The fields sent, for services/billing/portal.py (features as Stripe spells them)."""
        sent = self.model_dump(exclude_unset=True)
        if self.features is not None:
            sent["features"] = self.features.model_dump(exclude_none=True)
        return cast(portal.Changes, sent)


class PortalConfiguration(Answer):
    """Stripe's billing_portal.configuration object."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(examples=["bpc_1QxAbC"])
    object: Literal["billing_portal.configuration"] = "billing_portal.configuration"


class PortalConfigurationList(ListOf[PortalConfiguration]):
    pass
