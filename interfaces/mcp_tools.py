"""The MCP tools, declared once: one row per operation of the JSON API (and of the seeds it
follows: Togai, Stripe's Customer Portal, Lit, Lithtrix and the generic billing API).

Each row names the tool, says what it does, and gives its arguments as a pydantic model
(unknown arguments are refused) and the `/v1` call it makes: method and path (`{name}` is
filled from the argument of that name); a GET sends the other arguments as the query, a
POST as the JSON body (unset ones left out), `idempotency_key` as the Idempotency-Key
header. interfaces/mcp_server.py turns the rows into tools; the hints a row does not state
come from the API's own declaration of the route (views/api/declare.py): `readOnlyHint`
for a GET, `openWorldHint` where the route calls Stripe, and who may call it (a tool only
staff keys may call is listed only to a server running with a staff key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import ConfigDict, Field

IdempotencyKey = Annotated[str, Field(
    min_length=1, max_length=255,
    description="A new unique string (e.g. a UUID) for this operation. If the call fails or times "
                "out, retry with the SAME key: Tally then returns the first answer instead of "
                "doing it twice. Use a new key only for a new operation.")]
Limit = Annotated[int, Field(ge=1, le=100, description="How many items (1-100).")]
Cursor = Annotated[str | None, Field(description="An item id: the page after it (starting_after) "
                                                 "or before it (ending_before).")]
Object = Annotated[dict[str, Any] | None, Field(description="As the API takes it.")]

RETRY_NOTE = (" Pass an idempotency_key and reuse the same key when you retry this call, so it "
              "happens once.")


class Args(ArgModelBase):
    """A tool's arguments: exactly these, nothing else."""

    model_config = ConfigDict(extra="forbid")


class Page(Args):
    limit: Limit = 10
    starting_after: Cursor = None
    ending_before: Cursor = None


class Write(Args):
    idempotency_key: IdempotencyKey


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    method: str
    path: str  # `{name}` is filled from that argument
    args: type[Args] = Args
    destructive: bool = False  # something existing stops or is overwritten
    fallback_path: str = ""  # used when the path's arguments are not given
    switches_key: bool = False  # rotate-api-key: the server may switch to the new key


# Arguments ---------------------------------------------------------------------------------


class InvoicesArgs(Page):
    account_id: Annotated[str | None, Field(
        description="An account (staff key, or the key's own); default: the key's account.")] = None


class AccountArgs(Page):
    account_id: str


PM_PATTERN = r"^pm_[A-Za-z0-9_]+$"  # it goes into a path: no "/", "%" or ".."
PaymentMethodId = Annotated[str, Field(pattern=PM_PATTERN, description=(
    "A saved card's id (list-payment-methods), or when saving one, a PaymentMethod Stripe.js "
    "confirmed or Stripe's test ids such as pm_card_visa."))]


class PaymentIntentArgs(Write):
    amount: Annotated[int, Field(description="Minor units, e.g. 2500.")]
    payment_method_id: Annotated[str | None, Field(
        pattern=PM_PATTERN, description="A saved card: Tally charges it at once (no Stripe.js "
                                     "step); leave out to pay with Stripe.js.")] = None


class SaveCardArgs(Write):
    payment_method_id: PaymentMethodId


class CardArgs(Args):
    payment_method_id: PaymentMethodId


class DefaultCardArgs(Write):
    payment_method_id: PaymentMethodId


class AutoRechargeArgs(Write):
    enabled: bool
    threshold: Annotated[int, Field(ge=0, description="Recharge when available credit falls "
                                                      "below this (minor units).")]
    method: Annotated[str, Field(pattern=r"^(fixed|target)$", description=(
        "fixed: add `amount`; target: bring available credit up to `target`."))] = "fixed"
    amount: Annotated[int | None, Field(ge=0, description="With fixed: minor units added.")] = None
    target: Annotated[int | None, Field(ge=0, description="With target: minor units.")] = None
    payment_method_id: Annotated[str | None, Field(
        pattern=PM_PATTERN, description="A saved card; leave out for the default card.")] = None
    monthly_limit: Annotated[int | None, Field(
        ge=0, description="The most charged per calendar month (minor units); none: no limit.")] = None


class ConfirmArgs(Write):
    payment_intent_id: Annotated[str, Field(pattern=r"^pi_")]


class EventsArgs(Write):
    events: Annotated[list[dict[str, Any]], Field(
        min_length=1, max_length=1000,
        description="An account key: Tally's events [{id, event_name, timestamp?, properties}]. "
                    "A staff key: Togai's [{id, schemaName, accountId, timestamp, attributes, "
                    "dimensions}] (up to 500).")]


class AuthorizeArgs(Write):
    event_name: str = "api_call"
    quantity: int = 1
    id: Annotated[str | None, Field(description="Your id for this call.")] = None


class RotateArgs(Write):
    key_id: Annotated[str | None, Field(description="key_... (default: this server's key)")] = None


class GrantArgs(Write):
    account_id: str
    amount: Annotated[int, Field(gt=0)]
    reason: str
    note: Annotated[str | None, Field(description="What the customer reads.")] = None
    effective_from: Annotated[str | None, Field(description="RFC 3339.")] = None
    expires_at: Annotated[str | None, Field(description="RFC 3339.")] = None


class CustomersArgs(Page):
    q: Annotated[str | None, Field(description="Email, name, customer, account or Stripe id.")] = None


class CreateCustomerArgs(Write):
    name: str
    primaryEmail: str
    id: Annotated[str | None, Field(description="Your id for the customer.")] = None
    billingAddress: Annotated[dict[str, str] | None, Field(
        description="{addressLine1, addressLine2, city, state, zipCode, country}")] = None
    account: Annotated[dict[str, Any] | None, Field(
        description="Its first account: {id?, name, invoiceCurrency?}")] = None


class CustomerArgs(Args):
    customer_id: str


class CustomerAccountsArgs(Page):
    customer_id: str


class PricePlanArgs(Write):
    name: str
    currency: str = "usd"
    charges: Annotated[list[dict[str, Any]], Field(
        min_length=1, description="[{meter, model: per_unit|graduated|volume|package, unit_amount "
                                  "| tiers | package_size + package_amount, included_units}]")]


class MetersArgs(Page):
    event_name: Annotated[str | None, Field(description="Only the meters that read this event "
                                                        "(Togai's event schema name).")] = None


class PortalListArgs(Page):
    active: bool | None = None
    is_default: bool | None = None


class PortalFields(Write):
    business_profile: Object = None
    default_return_url: str | None = None
    login_page: Object = None
    metadata: Annotated[dict[str, str] | None, Field(description="Stripe's metadata.")] = None
    name: str | None = None


class PortalCreateArgs(PortalFields):
    features: Annotated[dict[str, Any], Field(
        description="Stripe's features, e.g. {\"invoice_history\": {\"enabled\": true}}.")]


class PortalUpdateArgs(PortalFields):
    configuration: Annotated[str, Field(pattern=r"^bpc_")]
    features: Object = None
    active: bool | None = None


class PortalRetrieveArgs(Args):
    configuration: Annotated[str, Field(pattern=r"^bpc_")]


class PortalSessionArgs(Write):
    customer: Annotated[str, Field(description="A Stripe (cus_...) or Tally customer id.")]
    return_url: str | None = None
    configuration: str | None = None
    locale: str | None = None


class WalletProofArgs(Write):
    typed_data: Annotated[dict[str, Any], Field(
        description="EIP-712 typed data, primaryType BillingAuth, message {wallet, issuedAt}.")]
    signature: Annotated[str, Field(description="The wallet's signature, 0x...")]


class WalletArgs(Args):
    address: Annotated[str, Field(description="The wallet's address, 0x...")]


class SetupArgs(Write):
    payment_method_id: Annotated[str, Field(description="pm_..., or Stripe's test ids such as "
                                                        "pm_card_visa.")]
    plan: str | None = None


class CheckoutArgs(Write):
    priceId: str
    successUrl: str
    cancelUrl: str


class BillingPortalArgs(Write):
    returnUrl: str


# The tools ---------------------------------------------------------------------------------

PAGE = " A page at a time (limit, starting_after, ending_before)."

TOOLS: tuple[ToolSpec, ...] = (
    # The account behind an account key (Lithtrix's /v1/me and /v1/billing, Lit's balance).
    ToolSpec("get-account", "The account behind the key: id, email, name and plan (tier), and "
             "Lithtrix's agent_id, agent_name, owner_identifier.", "GET", "/v1/me"),
    ToolSpec("get-billing", "Tier, all-time calls, call limit, whether over the limit, Stripe "
             "customer id, balance.", "GET", "/v1/billing"),
    ToolSpec("get-billing-balance", "Prepaid credit that can be spent now (`balance`, minor units) "
             "and its currency.", "GET", "/v1/billing/balance"),
    ToolSpec("get-billing-stripe-config", "The Stripe publishable key (for Stripe.js).", "GET",
             "/v1/billing/stripe-config"),
    ToolSpec("get-usage", "Usage this billing period per meter, with the plan's limits and spend.",
             "GET", "/v1/billing/usage"),
    ToolSpec("get-subscription", "The Pro subscription, if any: status, period, cancellation.",
             "GET", "/v1/billing/subscription"),
    ToolSpec("list-invoices", "Invoices and receipts, newest first; of `account_id` (staff) or "
             "of the key's account." + PAGE, "GET", "/v1/accounts/{account_id}/invoices",
             InvoicesArgs, fallback_path="/v1/billing/invoices"),
    ToolSpec("list-ledger-entries", "Every change of the balance (top-ups, grants, usage), newest "
             "first." + PAGE, "GET", "/v1/billing/ledger", Page),
    ToolSpec("list-price-plans", "The account's usage price plan (a staff key: every price plan), "
             "with its charges." + PAGE, "GET", "/v1/price-plans", Page),
    ToolSpec("list-usage-meters", "Meters (what usage is counted, from which event), optionally "
             "only those of one event name." + PAGE, "GET", "/v1/meters", MetersArgs),
    ToolSpec("list-api-keys", "The account's active API keys (prefixes only, never the secret)."
             + PAGE, "GET", "/v1/keys", Page),
    ToolSpec("list-credits", "An account's credit grants (staff, or the key's own account)." + PAGE,
             "GET", "/v1/accounts/{account_id}/credits", AccountArgs),
    ToolSpec("create-payment-intent", "Start a card top-up of `amount` minor units: returns a Stripe "
             "PaymentIntent id and client_secret for the customer to pay; then call "
             "confirm-payment. With a saved card's `payment_method_id` it is charged at once."
             + RETRY_NOTE, "POST", "/v1/billing/payment-intents",
             PaymentIntentArgs),
    # Saved cards and auto-recharge (never run dry).
    ToolSpec("list-payment-methods", "The account's saved cards, the default first." + PAGE,
             "GET", "/v1/payment-methods", Page),
    ToolSpec("save-payment-method", "Save a card (a PaymentMethod confirmed with Stripe.js "
             "confirmCardSetup); the first becomes the default." + RETRY_NOTE, "POST",
             "/v1/payment-methods", SaveCardArgs),
    ToolSpec("set-default-payment-method", "Make a saved card the default (it pays the "
             "subscription, one-click top-ups and auto-recharge)." + RETRY_NOTE, "POST",
             "/v1/payment-methods/{payment_method_id}/default", DefaultCardArgs),
    ToolSpec("remove-payment-method", "Remove a saved card. Calling it again changes nothing "
             "(404).", "DELETE", "/v1/payment-methods/{payment_method_id}", CardArgs,
             destructive=True),
    ToolSpec("get-auto-recharge", "Auto-recharge settings and state (the last attempt, failures "
             "in a row).", "GET", "/v1/billing/auto-recharge", Args),
    ToolSpec("set-auto-recharge", "Turn auto-recharge on or off: whenever available credit falls "
             "below `threshold`, the card is charged `amount` (or up to `target`), credited "
             "once; never more than `monthly_limit` a month." + RETRY_NOTE, "POST",
             "/v1/billing/auto-recharge", AutoRechargeArgs),
    ToolSpec("confirm-payment", "After the PaymentIntent succeeded, credit it to the balance "
             "(exactly once, whatever happens). `credited` is true only on the call that credited."
             + RETRY_NOTE, "POST", "/v1/billing/confirm-payment", ConfirmArgs),
    ToolSpec("ingest-events", "Record usage events (an event id seen before is counted once)."
             + RETRY_NOTE, "POST", "/v1/events", EventsArgs),
    ToolSpec("authorize", "Ask whether one more call is allowed and record it (402 over a limit "
             "or out of credit)." + RETRY_NOTE, "POST", "/v1/authorize", AuthorizeArgs),
    ToolSpec("rotate-api-key", "Replace an API key: returns the new key (shown only here); the old "
             "key stops working at once. Without key_id it rotates the key this server uses, and "
             "the server switches to the new one (and saves it to TALLY_API_KEY_FILE when set)."
             + RETRY_NOTE, "POST", "/v1/keys/rotate", RotateArgs, destructive=True,
             switches_key=True),
    # Lit's ChainSecured wallets.
    ToolSpec("list-wallets", "The wallets linked to the account (they may sign requests)." + PAGE,
             "GET", "/v1/wallets", Page),
    ToolSpec("link-wallet", "Link a wallet with a BillingAuth message it signed (as X-Wallet-Auth "
             "carries it)." + RETRY_NOTE, "POST", "/v1/wallets", WalletProofArgs),
    ToolSpec("unlink-wallet", "Unlink a wallet: its signatures stop working at once. Calling it "
             "again changes nothing (404).", "DELETE", "/v1/wallets/{address}", WalletArgs,
             destructive=True),
    # Plans and Stripe (Lithtrix's upgrade, the generic billing API).
    ToolSpec("list-plans", "The plans with their limits and prices (`priceId` for "
             "create-checkout-session)." + PAGE, "GET", "/v1/billing/plans", Page),
    ToolSpec("upgrade-plan", "Subscribe to a paid plan (default Pro) with a Stripe payment method; "
             "limits change at once." + RETRY_NOTE, "POST", "/v1/billing/setup", SetupArgs),
    ToolSpec("cancel-subscription", "Cancel the subscription at the end of its period." + RETRY_NOTE,
             "POST", "/v1/billing/cancel", Write, destructive=True),
    ToolSpec("resume-subscription", "Undo a cancellation at period end." + RETRY_NOTE, "POST",
             "/v1/billing/resume", Write),
    ToolSpec("create-checkout-session", "A Stripe Checkout page URL to subscribe to a plan's price."
             + RETRY_NOTE, "POST", "/v1/billing/checkout", CheckoutArgs),
    ToolSpec("create-billing-portal-session", "A Stripe Customer Portal URL for the key's customer."
             + RETRY_NOTE, "POST", "/v1/billing/portal", BillingPortalArgs),
    # Staff: Togai's customers, accounts, price plans and credits.
    ToolSpec("list-customers", "Customers, newest first; `q` searches." + PAGE, "GET",
             "/v1/customers", CustomersArgs),
    ToolSpec("create-customer", "Create a customer (Togai's fields), with its first account when "
             "`account` is given." + RETRY_NOTE, "POST", "/v1/customers", CreateCustomerArgs),
    ToolSpec("get-customer", "A customer with its accounts.", "GET", "/v1/customers/{customer_id}",
             CustomerArgs),
    ToolSpec("list-accounts", "A customer's accounts." + PAGE, "GET",
             "/v1/customers/{customer_id}/accounts", CustomerAccountsArgs),
    ToolSpec("create-price-plan", "Create a usage price plan with per-meter charges." + RETRY_NOTE,
             "POST", "/v1/price-plans", PricePlanArgs),
    ToolSpec("grant-credit", "Give an account free credit of `amount` minor units with a reason "
             "(audited), optionally from `effective_from` and expiring at `expires_at` (RFC 3339)."
             + RETRY_NOTE, "POST", "/v1/accounts/{account_id}/credits", GrantArgs),
    # Staff: Stripe's Customer Portal.
    ToolSpec("stripe-list-portal-configurations", "Stripe Customer Portal configurations." + PAGE,
             "GET", "/v1/billing_portal/configurations", PortalListArgs),
    ToolSpec("stripe-create-portal-configuration", "Create a Customer Portal configuration "
             "(Stripe's fields)." + RETRY_NOTE, "POST", "/v1/billing_portal/configurations",
             PortalCreateArgs),
    ToolSpec("stripe-retrieve-portal-configuration", "A Customer Portal configuration.", "GET",
             "/v1/billing_portal/configurations/{configuration}", PortalRetrieveArgs),
    ToolSpec("stripe-update-portal-configuration", "Change a Customer Portal configuration (the "
             "fields given replace theirs)." + RETRY_NOTE, "POST",
             "/v1/billing_portal/configurations/{configuration}", PortalUpdateArgs,
             destructive=True),
    ToolSpec("stripe-create-portal-session", "A Customer Portal session (its URL) for a customer."
             + RETRY_NOTE, "POST", "/v1/billing_portal/sessions", PortalSessionArgs),
)
