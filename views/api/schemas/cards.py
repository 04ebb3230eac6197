"""Saved cards (payment methods) and SetupIntents."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from views.api.schemas.common import STRIPE_ID, Answer, ListOf, Request, Says

PM_ID = Field(pattern=STRIPE_ID.format(prefix="pm"), examples=["pm_1QxAbC"])


class SetupIntent(Answer):
    setup_intent_id: str = Field(examples=["seti_1QxAbC"])
    client_secret: str | None = Field(
        description="Give to Stripe.js confirmCardSetup, then POST /v1/payment-methods with "
                    "the PaymentMethod it answers. Read again from Stripe for a replay "
                    "(same Idempotency-Key).", examples=["seti_1QxAbC_secret_xyz"])


class PaymentMethod(Answer):
    id: str = Field(examples=["pm_1QxAbC"])
    object: Literal["payment_method"] = "payment_method"
    brand: str = Field(description="Card brand, as Stripe names it.", examples=["visa"])
    last4: str = Field(examples=["4242"])
    exp_month: int = Field(ge=0, le=12, examples=[12])
    exp_year: int = Field(ge=0, examples=[2030])
    default: bool = Field(description="The card subscriptions, top-ups and auto-recharge use "
                                      "unless told otherwise.")


class PaymentMethodList(ListOf[PaymentMethod]):
    pass


class AttachRequest(Request):
    payment_method_id: Annotated[str, PM_ID, Field(
        description="A PaymentMethod confirmed by Stripe.js (confirmCardSetup), or one of "
                    "Stripe's test ids such as pm_card_visa."), Says(
        "payment_method_id must be a PaymentMethod id (pm_...).",
        missing="payment_method_id is required: the PaymentMethod Stripe.js confirmed.")]
