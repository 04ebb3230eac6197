"""Customers, accounts and credit grants, for support staff.

`primaryEmail` is Togai's name (its clients send and read it); a customer also answers
`primary_email`, and either is taken when creating one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from services.billing import plans
from services.staff.rules import MAX_NOTE_LENGTH, MAX_REASON_LENGTH, MIN_REASON_LENGTH
from views.api.schemas.common import (
    AccountId,
    Answer,
    Currency,
    ListOf,
    Money,
    NewCurrency,
    NotNull,
    PageQuery,
    PendingUsage,
    PostedBalance,
    Request,
    Says,
    Spendable,
    Time,
    Timestamp,
    fault,
)

MAX_NAME_LENGTH = 200
EMAIL_REQUIRED = "primaryEmail is required: the customer's billing email."


def documented_required(*names: str) -> Any:
    """Fields the document marks required that the service checks itself, with its own code
    (a missing reason is `reason_required`)."""

    def amend(schema: dict[str, Any], model: type) -> None:
        schema["required"] = [p for p in schema["properties"]
                              if p in names or p in schema.get("required", [])]
        for name in names:
            schema["properties"][name].pop("default", None)

    return amend


def _name(value: str) -> str:
    name = value.strip()
    if not name:
        raise fault("name is required.")
    if len(name) > MAX_NAME_LENGTH:
        raise fault(f"Use at most {MAX_NAME_LENGTH} characters for the name.")
    return name


Name = Annotated[str, AfterValidator(_name), Field(json_schema_extra={
    "minLength": 1, "maxLength": MAX_NAME_LENGTH}), Says("name is required.")]


def _plan_names(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [{"type": "string", "enum": [p.name for p in plans.all_plans()]},
                       {"type": "null"}]


class Account(Answer):
    id: AccountId
    object: Literal["account"] = "account"
    customer_id: str
    name: str
    plan: str = Field(examples=["free"])
    currency: Currency
    balance: Spendable
    posted_balance: PostedBalance
    pending_usage: PendingUsage
    time_zone: str
    grace_period_ends_at: Time | None
    created_at: Time | None


class AccountList(ListOf[Account]):
    pass


class Customer(Answer):
    id: str = Field(examples=["cust_4Nc8"])
    object: Literal["customer"] = "customer"
    name: str
    primary_email: str = Field(description="The billing email.")
    primaryEmail: str = Field(description="The same as primary_email (Togai's name).")
    stripe_customer_id: str | None
    created_at: Time | None
    accounts: list[Account] | None = Field(default=None, description="With GET and POST of one customer.")


class CustomerList(ListOf[Customer]):
    pass


class CustomerQuery(PageQuery):
    q: str | None = Field(default=None, description="Email (customer's or any user's), name, customer or "
                                            "account id, Stripe customer id.")


class CreateCustomerRequest(Request):
    """Togai's fields; `primary_email` is taken for `primaryEmail`."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["primaryEmail"]},
                                                           {"required": ["primary_email"]}]})

    name: Name
    primaryEmail: Annotated[str | None, NotNull(), Field(
        json_schema_extra={"format": "email"}, examples=["billing@acme.test"]),
        Says(EMAIL_REQUIRED)] = None
    primary_email: Annotated[str | None, NotNull(), Field(
        description="The same as primaryEmail.", json_schema_extra={"format": "email"}),
        Says(EMAIL_REQUIRED)] = None
    id: Annotated[str | None, Field(description="Your id for the customer.",
                                    pattern="^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"),
                  Says("id must be 1 to 32 letters, digits, - or _.")] = None

    @model_validator(mode="after")
    def _an_email(self) -> CreateCustomerRequest:
        if self.email is None:
            raise fault(EMAIL_REQUIRED, param="primaryEmail")
        return self

    @property
    def email(self) -> str | None:
        return self.primaryEmail if self.primaryEmail is not None else self.primary_email


class CreateAccountRequest(Request):
    name: Name
    currency: NewCurrency | None = None
    plan: Annotated[str | None, Field(json_schema_extra=_plan_names),
                    Says("plan must be the name of a plan.")] = None


class CreditGrant(Answer):
    id: str = Field(examples=["grant_7Hq2"])
    object: Literal["credit_grant"] = "credit_grant"
    account_id: AccountId
    amount: Money
    currency: Currency
    reason: str = Field(description="Why, for the audit log. An account key reading its own "
                                    "grants gets what its ledger says instead (the note, or "
                                    "\"Credit from Tally\").", examples=["Goodwill for the outage"])
    note: str | None = Field(description="What the customer reads beside the credit, if staff "
                                         "gave it.", json_schema_extra={"maxLength": MAX_NOTE_LENGTH},
                             examples=["Sorry about the outage"])
    status: Literal["active", "scheduled", "expired"]
    effective_from: Time | None
    expires_at: Time | None
    expired_amount: int = Field(ge=0)
    remaining: int | None = Field(description="What is left of the grant, in the list; null while "
                                              "scheduled and in the answer to a grant.", ge=0)
    created_at: Time | None


class CreditGrantList(ListOf[CreditGrant]):
    pass


class CreditGrantCreated(CreditGrant):
    balance: Spendable
    posted_balance: PostedBalance


class GrantCreditRequest(Request):
    model_config = ConfigDict(json_schema_extra=documented_required("reason"))

    amount: Annotated[int, Field(examples=[5000], json_schema_extra={"minimum": 1}), Says(
        "amount must be a whole number of minor units (cents).",
        missing="amount is required: minor units (cents), e.g. 2500 for 25.00.")]
    reason: Annotated[str, Field(
        description=f"Why; it goes into the audit log. At least {MIN_REASON_LENGTH} characters "
                    "once runs of spaces are made one.", examples=["Goodwill for the outage"],
        json_schema_extra={"minLength": MIN_REASON_LENGTH, "maxLength": MAX_REASON_LENGTH}),
        Says("reason must be a string.")] = ""
    note: Annotated[str | None, Field(
        description="Shown to the customer beside the credit (the reason is not).",
        json_schema_extra={"maxLength": MAX_NOTE_LENGTH}), Says("note must be a string.")] = None
    effective_from: Timestamp | None = None
    expires_at: Timestamp | None = None
