"""Customers, accounts and credit grants, for support staff.

Togai's names (its clients send and read them): `primaryEmail`, `billingAddress` and
`account` of a customer, `id` and `invoiceCurrency` of an account. A customer also answers
`primary_email` and `billing_address`, an account `currency`; either spelling of the email
and of the currency is taken when creating one.
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


ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
ID_SAYS = Says("id must be 1 to 32 letters, digits, - or _.")
ADDRESS_FIELDS = ("addressLine1", "addressLine2", "city", "state", "zipCode", "country")
AddressLine = Annotated[str | None, Field(max_length=200), Says(
    "{param} must be a string of at most 200 characters.")]


class BillingAddress(Request):
    """Togai's address; every field optional."""

    addressLine1: AddressLine = None
    addressLine2: AddressLine = None
    city: AddressLine = None
    state: AddressLine = None
    zipCode: AddressLine = None
    country: AddressLine = None

    def kept(self) -> dict[str, str]:
        """The fields given, as stored (and printed on invoices)."""
        return {k: v for k, v in self.model_dump().items() if v}


class Address(Answer):
    addressLine1: str | None = Field(examples=["1 Main St"])
    addressLine2: str | None
    city: str | None = Field(examples=["Springfield"])
    state: str | None
    zipCode: str | None = Field(examples=["12345"])
    country: str | None = Field(examples=["US"])


def address_answer(stored: dict[str, str] | None) -> Address | None:
    return Address(**{k: (stored or {}).get(k) for k in ADDRESS_FIELDS}) if stored else None


class Account(Answer):
    id: AccountId
    object: Literal["account"] = "account"
    customer_id: str
    name: str
    plan: str = Field(examples=["free"])
    currency: Currency
    invoiceCurrency: str = Field(description="The currency in upper case (Togai's name).",
                                 examples=["USD"])
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
    billingAddress: Address | None = Field(description="Printed on invoices (Togai's name); null "
                                                      "for none.")
    billing_address: Address | None = Field(description="The same as billingAddress.")
    stripe_customer_id: str | None
    created_at: Time | None
    accounts: list[Account] | None = Field(default=None, description="With GET and POST of one customer.")
    account: Account | None = Field(default=None, description="The account created with the customer "
                                                              "(a POST with Togai's `account`).")


class CustomerList(ListOf[Customer]):
    pass


class CustomerQuery(PageQuery):
    q: str | None = Field(default=None, description="Email (customer's or any user's), name, customer or "
                                            "account id, Stripe customer id.")


class CreateAccountRequest(Request):
    """Tally's `{name, currency, plan}` or Togai's `{id, name, invoiceCurrency}`."""

    id: Annotated[str | None, Field(description="Your id for the account (Togai's).",
                                    pattern=ID_PATTERN), ID_SAYS] = None
    name: Name
    currency: NewCurrency | None = None
    invoiceCurrency: Annotated[NewCurrency | None, Field(
        description="The same as currency (Togai's name).")] = None
    plan: Annotated[str | None, Field(json_schema_extra=_plan_names),
                    Says("plan must be the name of a plan.")] = None

    @model_validator(mode="after")
    def _one_currency(self) -> CreateAccountRequest:
        if (self.currency and self.invoiceCurrency
                and self.currency.lower() != self.invoiceCurrency.lower()):
            raise fault("currency and invoiceCurrency differ; send one.", param="invoiceCurrency")
        return self

    @property
    def currency_given(self) -> tuple[str | None, str]:
        """The currency asked for (None: the default) and the field it came in."""
        if self.invoiceCurrency is not None:
            return self.invoiceCurrency, "invoiceCurrency"
        return self.currency, "currency"


class TogaiAccountRequest(CreateAccountRequest):
    """Togai's `account` of a new customer (Tally's account fields are taken too)."""


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
    id: Annotated[str | None, Field(description="Your id for the customer.", pattern=ID_PATTERN),
                  ID_SAYS] = None
    billingAddress: Annotated[BillingAddress | None, NotNull(), Says(
        "billingAddress must be an object.")] = None
    account: Annotated[TogaiAccountRequest | None, NotNull(), Field(
        description="Togai's first account of the customer, created with it."),
        Says("account must be an object.")] = None

    @model_validator(mode="after")
    def _an_email(self) -> CreateCustomerRequest:
        if self.email is None:
            raise fault(EMAIL_REQUIRED, param="primaryEmail")
        return self

    @property
    def email(self) -> str | None:
        return self.primaryEmail if self.primaryEmail is not None else self.primary_email


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
