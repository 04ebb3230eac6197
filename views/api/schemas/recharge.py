"""Auto-recharge settings and state."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.recharge import METHODS, STATUSES
from services.ledger.recharge import MAX_AMOUNT
from views.api.schemas.common import STRIPE_ID, Answer, NotNull, Request, Says, Time

MINOR = "Minor units (cents)."


class AutoRechargeRequest(Request):
    enabled: Annotated[bool, Says("enabled must be true or false.",
                                  missing="enabled is required: true or false.")]
    threshold: Annotated[int, Field(ge=0, le=MAX_AMOUNT, examples=[1000], description=(
        "Recharge when available credit falls below this. " + MINOR)), Says(
        "threshold must be a whole number of minor units, zero or more.",
        missing="threshold is required: minor units (cents), e.g. 1000 for 10.00.")]
    method: Annotated[Literal[METHODS], NotNull(), Field(  # type: ignore[valid-type]
        description="fixed: add `amount`; target: bring available credit up to `target`."),
        Says("method must be fixed or target.")] = "fixed"
    amount: Annotated[int | None, Field(ge=0, le=MAX_AMOUNT, examples=[2500], description=(
        "With method fixed: how much each recharge adds, within the top-up bounds. " + MINOR)),
        Says("amount must be a whole number of minor units.")] = None
    target: Annotated[int | None, Field(ge=0, le=MAX_AMOUNT, examples=[5000], description=(
        "With method target: the available credit a recharge brings you up to. " + MINOR)),
        Says("target must be a whole number of minor units.")] = None
    payment_method_id: Annotated[str | None, Field(
        pattern=STRIPE_ID.format(prefix="pm"), examples=["pm_1QxAbC"],
        description="One of your saved cards; null: the default card."),
        Says("payment_method_id must be one of your saved cards (pm_...).")] = None
    monthly_limit: Annotated[int | None, Field(ge=0, le=MAX_AMOUNT, examples=[20000], description=(
        "The most auto-recharge may charge per calendar month; null: no limit. " + MINOR)),
        Says("monthly_limit must be a whole number of minor units.")] = None


class LastAttempt(Answer):
    at: Time
    amount: int = Field(ge=0, description=MINOR)
    outcome: Literal["pending", "succeeded", "declined", "requires_action", "monthly_limit",
                     "no_card", "not_needed"]


class AutoRecharge(Answer):
    enabled: bool
    threshold: int = Field(ge=0, description=MINOR)
    method: Literal[METHODS]  # type: ignore[valid-type]
    amount: int | None = Field(description=MINOR)
    target: int | None = Field(description=MINOR)
    payment_method_id: str | None = Field(description="null: the default card.")
    monthly_limit: int | None = Field(description=MINOR + " null: no limit.")
    status: Literal[STATUSES] = Field(description=(  # type: ignore[valid-type]
        "idle (waiting for credit to fall below the threshold), charging (one recharge in "
        "flight), requires_action (the bank asks for 3-D Secure: complete it on the top-up "
        "page), disabled."))
    consecutive_failures: int = Field(ge=0, description="After 3, auto-recharge turns itself off.")
    last_attempt: LastAttempt | None
