"""Usage price plans: staff create and assign them; accounts read theirs.

The shape of a plan is checked here (whole numbers, tiers in order, the amounts each
model needs); which meters exist and may be priced is the service's to say
(services/usage/rating.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from models.pricing import PRICING_MODELS
from services.usage import rating
from services.usage.rating import MAX_AMOUNT
from views.api.schemas.common import (
    AccountId,
    Answer,
    Currency,
    ListOf,
    NewCurrency,
    NotNull,
    Request,
    Says,
    Time,
    fault,
)

MAX_TIERS = MAX_CHARGES = 20


def _whole(minimum: int) -> Says:
    return Says(f"{{param}} must be a whole number >= {minimum}.")


Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT), _whole(0)]
Count = Annotated[int, Field(ge=1, le=MAX_AMOUNT), _whole(1)]


class PriceTierRequest(Request):
    up_to: Annotated[int | None, Field(ge=1, le=MAX_AMOUNT), _whole(1)] = None
    unit_amount: Amount
    flat_amount: Amount = 0


class ChargeRequest(Request):
    meter: Annotated[str, Field(examples=["apiCalls"]), Says("{param} must be a meter's name.")]
    model: Annotated[Literal[PRICING_MODELS], Says(  # type: ignore[valid-type]
        f"model must be one of {', '.join(PRICING_MODELS)}.")]
    unit_amount: Annotated[int | None, NotNull(), Field(
        description="per_unit: price of one unit.", ge=0, le=MAX_AMOUNT), _whole(0)] = None
    tiers: Annotated[list[PriceTierRequest] | None, NotNull(), Field(
        description="graduated or volume; the last has up_to null.", min_length=1,
        max_length=MAX_TIERS), Says(f"{{param}} must be a list of 1 to {MAX_TIERS} tiers.")] = None
    package_size: Annotated[int | None, NotNull(), Field(
        description="package: units in one package.", ge=1, le=MAX_AMOUNT), _whole(1)] = None
    package_amount: Annotated[int | None, NotNull(), Field(ge=0, le=MAX_AMOUNT), _whole(0)] = None
    included_units: Amount = 0

    @model_validator(mode="after")
    def _amounts_of_the_model(self) -> ChargeRequest:
        needed = {"per_unit": ("unit_amount",), "package": ("package_size", "package_amount"),
                  "graduated": ("tiers",), "volume": ("tiers",)}[self.model]
        for name in needed:
            if getattr(self, name) is None:
                raise fault(f"{{param}} is required by a {self.model} charge.", param=name)
        if self.tiers is not None:
            _check_tiers(self.tiers)
        return self


def _check_tiers(tiers: list[PriceTierRequest]) -> None:
    last = 0
    for i, tier in enumerate(tiers):
        if tier.up_to is None and i != len(tiers) - 1:
            raise fault("Only the last tier may be open-ended (up_to null).", param=f"tiers[{i}]")
        if tier.up_to is not None:
            if tier.up_to <= last:
                raise fault(f"{{param}} must be a whole number >= {last + 1}.",
                            param=f"tiers[{i}].up_to")
            last = tier.up_to
    if tiers[-1].up_to is not None:
        raise fault("The last tier must have up_to null (no upper bound).", param="tiers")


class CreatePricePlanRequest(Request):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
                    Field(examples=["Metered"]), Says("name must be a string of 1 to 100 characters.")]
    currency: Annotated[NewCurrency, Field(description="Default usd.")] = "usd"
    charges: Annotated[list[ChargeRequest], Field(min_length=1, max_length=MAX_CHARGES), Says(
        f"charges must be a list of 1 to {MAX_CHARGES} meter prices.")]

    def charge_specs(self) -> list[rating.ChargeSpec]:
        return [rating.ChargeSpec(**charge.model_dump()) for charge in self.charges]


class PriceTier(Answer):
    up_to: int | None = Field(ge=1)
    unit_amount: int = Field(ge=0)
    flat_amount: int | None = Field(default=None, ge=0)


class PriceCharge(Answer):
    meter: str | None = Field(examples=["apiCalls"])
    model: Literal[PRICING_MODELS]  # type: ignore[valid-type]
    included_units: int = Field(ge=0)
    unit_amount: int | None = Field(default=None, ge=0)
    package_size: int | None = Field(default=None, ge=1)
    package_amount: int | None = Field(default=None, ge=0)
    tiers: list[PriceTier] | None = None


class PricePlan(Answer):
    id: str = Field(examples=["pp_4Nc8"])
    object: Literal["price_plan"] = "price_plan"
    name: str
    currency: Currency
    charges: list[PriceCharge]
    created_at: Time


class PricePlanList(ListOf[PricePlan]):
    pass


class AssignPricePlanRequest(Request):
    price_plan_id: Annotated[str | None, Field(description="null takes the plan off."), Says(
        "price_plan_id must be a price plan id or null.",
        missing="price_plan_id is required: a price plan id, or null to take the price plan off.")]
    reason: Annotated[str, Field(description="Why; it goes into the audit log.", max_length=500),
                      Says("reason must be a string of at most 500 characters.")] = ""


class PricePlanAssignment(Answer):
    account_id: AccountId
    price_plan_id: str | None
