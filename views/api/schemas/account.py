"""The account, its balance and ledger, and card top-ups."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from models.ledger import KINDS as LEDGER_KINDS
from services.ledger import topups
from views.api.schemas.common import (
    STRIPE_ID,
    AccountId,
    Answer,
    Currency,
    ListOf,
    Money,
    NotNull,
    PendingUsage,
    PostedBalance,
    Request,
    Says,
    Spendable,
    Time,
)

TIER = Field(description="Plan name.", examples=["free"])


class Me(Answer):
    account_id: AccountId
    email: str = Field(json_schema_extra={"format": "email"}, examples=["ada@example.com"])
    name: str = Field(examples=["Analytical Engines"])
    tier: str = TIER
    agent_id: AccountId = Field(description="Lithtrix's name for the account id.")
    agent_name: str = Field(description="Lithtrix's name for the account's name.",
                            examples=["Analytical Engines"])
    owner_identifier: str = Field(description="Lithtrix's name for the owner's email.",
                                  examples=["ada@example.com"])


class Billing(Answer):
    tier: str = TIER
    calls_total: int = Field(description="All-time count of apiCalls.", ge=0)
    call_limit: int | None = Field(description="All-time cap on apiCalls (the plan's "
                                               "lifetimeApiCalls); null for none.", ge=0)
    over_limit: bool = Field(description="True when a call would be refused now (monthly or "
                                         "all-time limit).")
    stripe_customer_id: str | None = Field(examples=["cus_QXk1"])
    balance: Spendable
    currency: Currency


class Balance(Answer):
    balance: Spendable
    posted_balance: PostedBalance
    pending_usage: PendingUsage
    currency: Currency
    balance_cents: int = Field(
        le=0, description="Lit Protocol's figure: spendable credit as a debt, in minor units, so "
                          "negative while credit is available and 0 when it is exhausted ($5.00 of "
                          "credit is -500).", examples=[-2500])
    balance_display: str = Field(description="Lit Protocol's words for the spendable credit.",
                                 examples=["$25.00 credit"])


class LedgerEntry(Answer):
    id: int = Field(examples=[42])
    object: Literal["ledger_entry"] = "ledger_entry"
    amount: int = Field(description="Signed minor units: credits are positive, debits negative.",
                        examples=[2500])
    currency: Currency
    kind: Literal[LEDGER_KINDS]  # type: ignore[valid-type]
    description: str = Field(examples=["Card top-up"])
    created_at: Time


class LedgerEntryList(ListOf[LedgerEntry]):
    pass


class StripeConfig(Answer):
    stripe_publishable_key: str = Field(description="For Stripe.js; empty when not set.",
                                        examples=["pk_test_..."])
    publishable_key: str = Field(description="The same key, by Lit Protocol's name.",
                                 examples=["pk_test_..."])


# Top-ups -------------------------------------------------------------------------------


def _topup_bounds(schema: dict[str, Any]) -> None:
    """The configured bounds (TALLY_TOPUP_MIN_AMOUNT / _MAX_AMOUNT), read when the document
    is built; the service refuses amounts outside them (400 amount_out_of_range)."""
    low, high = topups.bounds()
    schema.update(minimum=low, maximum=high, description=f"Minor units, {low} to {high}.")


class PaymentIntentRequest(Request):
    amount: Annotated[int, Field(examples=[2500], json_schema_extra=_topup_bounds), Says(
        "amount must be a whole number of minor units (cents), e.g. 2500 for 25.00.",
        missing="amount is required: minor units (cents), e.g. 2500 for 25.00.")]
    payment_method_id: Annotated[str | None, NotNull(), Field(
        pattern=STRIPE_ID.format(prefix="pm"),
        description="One of the account's saved cards (GET /v1/payment-methods): Tally "
                    "confirms the payment at once. Without it, pay with Stripe.js."), Says(
        "payment_method_id must be one of your saved cards (pm_...).")] = None


# Lit Protocol's body: at least LIT_MIN_AMOUNT cents, or Tally's minimum when that is higher.
LIT_MIN_AMOUNT = 500


def lit_bounds() -> tuple[int, int]:
    """The smallest and largest `amount_cents` (Lit's minimum of 500, or Tally's, if higher)."""
    low, high = topups.bounds()
    return max(low, LIT_MIN_AMOUNT), high


def _lit_bounds(schema: dict[str, Any]) -> None:
    low, high = lit_bounds()
    schema.update(minimum=low, maximum=high, description=f"Lit Protocol's name for the amount: "
                  f"minor units (cents), {low} to {high}.")


class LitPaymentIntentRequest(Request):
    amount_cents: Annotated[int, Field(examples=[2500], json_schema_extra=_lit_bounds), Says(
        "amount_cents must be a whole number of cents, e.g. 2500 for 25.00.",
        missing="amount_cents is required: cents, e.g. 2500 for 25.00.")]


def payment_intent_shape(data: dict[str, Any]) -> type[Request]:
    """Lit's `{amount_cents}` when it is sent without Tally's `amount`; else `{amount}`."""
    if "amount_cents" in data and "amount" not in data:
        return LitPaymentIntentRequest
    return PaymentIntentRequest


class PaymentIntent(Answer):
    payment_intent_id: str = Field(examples=["pi_3QxAbC"])
    client_secret: str = Field(description="Give to Stripe.js confirmCardPayment.",
                               examples=["pi_3QxAbC_secret_xyz"])
    amount: Money
    currency: Currency
    status: Literal["requires_payment_method", "requires_action", "processing",
                    "succeeded"] = Field(
        default="requires_payment_method", description=(
            "requires_payment_method: pay it with Stripe.js confirmCardPayment and a card. With "
            "payment_method_id: succeeded (credited in this answer), or requires_action (the "
            "bank asks for 3-D Secure: confirmCardPayment(client_secret), then POST "
            "/v1/billing/confirm-payment)."))
    credited: bool | None = Field(default=None, description=(
        "With a saved card that succeeded: true when this call credited the account."))
    balance: int | None = Field(default=None, description=(
        "With a saved card that succeeded: spendable credit after the credit."))


class ConfirmPaymentRequest(Request):
    payment_intent_id: Annotated[str, Field(pattern=STRIPE_ID.format(prefix="pi"),
                                            examples=["pi_3QxAbC"]), Says(
        "payment_intent_id must be a PaymentIntent id (pi_...).",
        missing="payment_intent_id is required.")]


class ConfirmPayment(Answer):
    success: Literal[True] = Field(default=True, description=(
        "Lit Protocol's field: true once the PaymentIntent is credited to the caller's account, "
        "by this call or earlier."))
    credited: bool = Field(description="True only on the call that credited the account.")
    balance: Spendable
    currency: Currency
