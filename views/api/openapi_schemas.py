"""The JSON shapes of the /v1 API, as OpenAPI 3.1 (JSON Schema 2020-12) component schemas.

Written by reading each view in views/api/ and the services it calls; the contract test
(tests/test_contract.py) checks every real answer against them, so a field added to a
view without its line here fails a test. PaymentIntentRequest, PlanName and PaidPlanName
depend on the configuration, so views/api/openapi.py adds them. Object schemas are left open (no
`additionalProperties: false`) so clients may ignore new fields; the test closes them.
"""

from __future__ import annotations

from typing import Any

from models.billing import INVOICE_KINDS
from models.keys import KIND_ACCOUNT, KIND_USAGE
from models.ledger import KINDS as LEDGER_KINDS
from models.pricing import PRICING_MODELS
from models.usage import AGGREGATIONS
from services.money import SUPPORTED_CURRENCIES
from services.staff.rules import MAX_REASON_LENGTH, MIN_REASON_LENGTH

Schema = dict[str, Any]


# Building blocks -----------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def string(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "string", **keywords}, description)


def integer(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "integer", **keywords}, description)


def boolean(description: str = "") -> Schema:
    return _described({"type": "boolean"}, description)


def const(value: Any, description: str = "") -> Schema:
    return _described({"const": value}, description)


def enum(*values: str, description: str = "") -> Schema:
    return _described({"type": "string", "enum": list(values)}, description)


def array(items: Schema, description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "array", "items": items, **keywords}, description)


def nullable(schema: Schema) -> Schema:
    """`schema` or JSON null."""
    if isinstance(schema.get("type"), str) and "enum" not in schema and "const" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema] | None = None, optional: dict[str, Schema] | None = None,
        description: str = "", **keywords: Any) -> Schema:
    """An object; `required` fields are always present, `optional` ones sometimes."""
    required, optional = required or {}, optional or {}
    schema: Schema = {"type": "object", "properties": {**required, **optional}, **keywords}
    if required:
        schema["required"] = list(required)
    return _described(schema, description)


def list_of(item: Schema, description: str = "", **extra: Schema) -> Schema:
    """Stripe's list envelope: `{object: "list", data: [...], has_more}` (newest first)."""
    return obj({"object": const("list"), "data": array(item),
                "has_more": boolean("True when another page follows (pass the last id as "
                                    "starting_after)."), **extra}, description=description)


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description} if description else schema


# Common values ---------------------------------------------------------------------

MONEY = integer("Minor units of the currency (cents): 2500 is 25.00.", examples=[2500])
REASON = (f"Why; it goes into the audit log. At least {MIN_REASON_LENGTH} characters once "
          "runs of spaces are made one.")
CURRENCY = string("ISO 4217 code, lower case.", minLength=3, maxLength=3, examples=["usd"])
NEW_CURRENCY = enum(*sorted(SUPPORTED_CURRENCIES)) | {
    "description": "ISO 4217 code, lower case (upper case is read as lower): one Stripe "
                   "charges in and whose minor unit Tally knows."}
TIME = string("RFC 3339 timestamp, UTC.", format="date-time", examples=["2026-01-31T09:30:00+00:00"])
OPTIONAL_TIME = nullable(TIME)
ACCOUNT_ID = string("Account id.", examples=["acct_8Jx2mQv0TzLp3RkYb7Wn"])
LIMIT = nullable(integer("The limit; null means unlimited.", minimum=0))
URL = string("Absolute http(s) URL.", format="uri", examples=["https://example.com/billing"])




def api_key(**extra: Schema) -> Schema:
    return obj({
        "id": string(examples=["key_Vb2kq9Lr0xTz7Hm1Pa4s"]), "object": const("api_key"),
        "name": string(examples=["Usage key"]), "kind": enum(KIND_ACCOUNT, KIND_USAGE),
        "prefix": string("The first characters, to recognise the key.", examples=["tly_a1B2c3D4"]),
        "created_at": TIME, "last_used_at": OPTIONAL_TIME, **extra,
    })


def credit_grant(**extra: Schema) -> Schema:
    return obj({
        "id": string(examples=["grant_..."]), "object": const("credit_grant"), "account_id": ACCOUNT_ID,
        "amount": MONEY, "currency": CURRENCY,
        "reason": string("Why, for the audit log. An account key reading its own grants gets "
                         "what its ledger says instead (the note, or \"Credit from Tally\").",
                         examples=["Goodwill for the outage"]),
        "note": nullable(string("What the customer reads beside the credit, if staff gave it.",
                                maxLength=200, examples=["Sorry about the outage"])),
        "status": enum("active", "scheduled", "expired"), "effective_from": OPTIONAL_TIME,
        "expires_at": OPTIONAL_TIME, "expired_amount": integer(minimum=0),
        "remaining": nullable(integer("What is left of the grant, in the list; null while "
                                      "scheduled and in the answer to a grant.", minimum=0)),
        "created_at": OPTIONAL_TIME, **extra,
    })


# Component schemas -----------------------------------------------------------------

SCHEMAS: dict[str, Schema] = {
    # Errors
    "Error": obj({
        "error": string("A short title.", examples=["Invalid request"]),
        "code": string("Machine-readable code; branch on this.", examples=["invalid_request"]),
        "message": string("What went wrong and what to do.", examples=["amount is required."]),
    }, {
        "param": string("The one field at fault, when there is one.", examples=["amount"]),
    }, description="Every error on every /v1 path has this shape."),
    "PaymentRequiredError": obj({
        "error": string(examples=["Usage limit exceeded"]),
        "code": string("`usage_limit_exceeded` (a plan limit, prepaid credit or the spend cap), "
                       "a card error such as `card_declined`, or `requires_action` (3-D Secure "
                       "for a subscription's first payment).", examples=["usage_limit_exceeded"]),
        "message": string(examples=["API call limit reached for current period"]),
    }, {
        "param": string(),
        "usage": obj({"current": integer(minimum=0, examples=[1000]),
                      "limit": nullable(integer(minimum=0, examples=[1000]))},
                     description="The meter's use and limit (with usage_limit_exceeded)."),
        "upgrade_url": string("Where to send the user to upgrade (with usage_limit_exceeded).",
                              format="uri", examples=["https://tally.example.com/plans"]),
        "requires_action": const(True, "With requires_action (POST /v1/billing/setup and "
                                 "/setup/confirm): the bank asks for 3-D Secure."),
        "payment_intent_client_secret": string(
            "With requires_action: confirm it with Stripe.js confirmCardPayment.",
            examples=["pi_3Q..._secret_..."]),
        "payment_intent_id": string("With requires_action: the first payment's PaymentIntent.",
                                    examples=["pi_3Q..."]),
        "subscription_id": string("With requires_action: pass it to POST "
                                  "/v1/billing/setup/confirm.", examples=["sub_1Q..."]),
    }, description="402: over a plan limit or out of prepaid credit (nothing was recorded), "
                   "a card was declined (nothing was charged), or a card's first payment "
                   "needs 3-D Secure (`requires_action`; nothing is charged until it is done).",
        allOf=[
            {"if": {"properties": {"code": {"const": "usage_limit_exceeded"}}, "required": ["code"]},
             "then": {"required": ["usage", "upgrade_url"]}},
            {"if": {"properties": {"code": {"const": "requires_action"}}, "required": ["code"]},
             "then": {"required": ["requires_action", "payment_intent_client_secret",
                                   "payment_intent_id", "subscription_id"]}},
        ]),

    # Account and balance
    "Me": obj({"account_id": ACCOUNT_ID, "email": string(format="email", examples=["ada@example.com"]),
               "name": string(examples=["Analytical Engines"]),
               "tier": string("Plan name.", examples=["free"])}),
    "Billing": obj({
        "tier": string("Plan name.", examples=["free"]),
        "calls_total": integer("All-time count of apiCalls.", minimum=0),
        "call_limit": nullable(integer("All-time cap on apiCalls (the plan's lifetimeApiCalls).",
                                       minimum=0)),
        "over_limit": boolean("True when a call would be refused now (monthly or all-time limit)."),
        "stripe_customer_id": nullable(string(examples=["cus_QXk1"])),
        "balance": MONEY, "currency": CURRENCY,
    }),
    "Balance": obj({
        "balance": integer("What can be spent: posted_balance less pending_usage (minor units).",
                           examples=[2500]),
        "posted_balance": integer("The ledger balance (minor units).", examples=[2700]),
        "pending_usage": integer("Rated usage not yet posted to the ledger (minor units).",
                                 minimum=0, examples=[200]),
        "currency": CURRENCY}),
    "LedgerEntry": obj({
        "id": integer(examples=[42]), "object": const("ledger_entry"),
        "amount": integer("Signed minor units: credits are positive, debits negative.", examples=[2500]),
        "currency": CURRENCY, "kind": enum(*LEDGER_KINDS),
        "description": string(examples=["Card top-up"]), "created_at": TIME,
    }),
    "StripeConfig": obj({"stripe_publishable_key": string("For Stripe.js; empty when not set.",
                                                          examples=["pk_test_..."])}),

    # Top-ups
    "PaymentIntent": obj({
        "payment_intent_id": string(examples=["pi_3Qx..."]),
        "client_secret": string("Give to Stripe.js confirmCardPayment.", examples=["pi_3Qx..._secret_..."]),
        "amount": MONEY, "currency": CURRENCY,
    }),
    "ConfirmPaymentRequest": obj({"payment_intent_id": string(examples=["pi_3Qx..."])}),
    "ConfirmPayment": obj({
        "credited": boolean("True only on the call that credited the account."),
        "balance": MONEY, "currency": CURRENCY,
    }),

    # Keys
    "ApiKey": api_key(),
    "RevokedApiKey": api_key(revoked=const(True)),
    "IssuedApiKey": obj({
        "api_key": nullable(string(
            "The key itself, shown only in this answer. A replay of the request (same "
            "Idempotency-Key) answers null: Tally keeps only the key's hash.", pattern="^tly_",
            examples=["tly_..."])),
        "key": ref("ApiKey"),
    }),
    "CreateKeyRequest": obj(optional={
        "kind": enum(KIND_USAGE, KIND_ACCOUNT, description="Default usage: only /v1/authorize, "
                     "/v1/events and reading balance and usage."),
        "name": nullable(string(maxLength=100, examples=["Product server"])),
    }),
    "RotateKeyRequest": obj(optional={"key_id": string("Default: the calling key.")}),

    # Metering
    "AuthorizeRequest": obj(optional={
        "id": string("Your request id: a retry with the same id is answered again, counted once.",
                     maxLength=255, examples=["req_123"]),
        "event_name": string("Default api_call.", minLength=1, maxLength=100, examples=["api_call"]),
        "quantity": integer("Default 1.", minimum=1, maximum=10**9),
        "properties": nullable(obj(description="Event properties for the meters.")),
    }),
    "Authorization": obj({
        "allowed": const(True), "account_id": ACCOUNT_ID, "tier": string(examples=["free"]),
        "usage": obj({"current": integer(minimum=0), "limit": LIMIT},
                     description="The event's first meter this period."),
        "remaining": nullable(integer(minimum=0)),
    }, {"duplicate": const(True, "This request id was seen before; nothing was counted.")}),
    "Event": obj({
        "id": string("Idempotency key per account, kept forever.", minLength=1, maxLength=255,
                     examples=["evt_0001"]),
        "event_name": string(minLength=1, maxLength=100, examples=["llm_completion"]),
    }, {
        "timestamp": string("RFC 3339; default now; at most 35 days old or 5 minutes ahead.",
                            format="date-time"),
        "properties": nullable(obj(description="e.g. {\"tokens\": 812}; at most "
                                   "TALLY_MAX_EVENT_PROPERTIES_BYTES (4 KiB) as compact JSON.",
                                   examples=[{"tokens": 812}])),
    }),
    "EventBatch": obj({"events": array(ref("Event"), minItems=1, maxItems=1000)}),
    "IngestResult": obj({
        "accepted": integer(minimum=0), "duplicates": integer(minimum=0),
        "rejected": array(obj({"index": integer(minimum=0), "id": string(), "code": string(),
                               "message": string()}),
                       "Events refused one by one, and not stored; the rest count. Codes: "
                       "unknown_event_name (no meter reads it), properties_too_large, "
                       "missing_property, invalid_property, timestamp_too_old, "
                       "timestamp_in_future."),
    }),
    "Usage": obj({
        "period": string(examples=["2026-01"]), "period_start": TIME, "period_end": TIME,
        "time_zone": string(examples=["UTC"]),
        "usage": obj({
            "apiCalls": integer(minimum=0), "apiCallsLimit": LIMIT,
            "llmTokens": integer(minimum=0), "llmTokensLimit": LIMIT,
            "storage": integer(minimum=0), "storageLimit": LIMIT,
        }, description="Each meter's value this period and `<meter>Limit`; custom meters too.",
            additionalProperties=nullable(integer())),
        "spend": obj({"amount": integer("Rated usage this period (minor units).", minimum=0),
                      "cap": nullable(integer("The monthly spend cap; null for none.", minimum=0)),
                      "currency": CURRENCY}),
    }),
    "Settings": obj({
        "time_zone": string(examples=["Europe/Paris"]), "spend_cap": nullable(MONEY),
        "currency": CURRENCY, "alert_thresholds": array(integer(minimum=1, maximum=1000),
                                                        examples=[[80, 100]]),
    }),
    "SettingsRequest": obj(optional={
        "time_zone": string("IANA time zone name.", minLength=1, examples=["Europe/Paris"]),
        "spend_cap": nullable(integer("Monthly cap in minor units; null for none.",
                                      minimum=0, maximum=10**12)),
        "alert_thresholds": array(integer(minimum=1, maximum=1000), "Percentages of each limit.",
                                  maxItems=10),
    }),
    "Meter": obj({
        "object": const("meter"), "name": string(examples=["llmTokens"]),
        "event_name": string(examples=["llm_completion"]), "aggregation": enum(*AGGREGATIONS),
        "property": nullable(string(examples=["tokens"])), "unit": string(examples=["tokens"]),
    }),
    "CreateMeterRequest": obj({
        "name": string(pattern="^[A-Za-z][A-Za-z0-9_]{0,63}$", examples=["imagesGenerated"]),
        "event_name": string(minLength=1, maxLength=100, examples=["image_generated"]),
        "aggregation": enum(*AGGREGATIONS),
    }, {
        "property": nullable(string("Needed by sum, max, unique_count and latest.", maxLength=100)),
        "unit": string(maxLength=32),
    }),
    "MeterUsage": obj({
        "object": const("list"), "meter": string(), "granularity": enum("day", "hour"),
        "time_zone": string(), "unit": string(),
        "data": array(obj({"start": TIME, "value": integer()})),
    }),

    # Plans and subscriptions
    "Plan": obj({
        "object": const("plan"), "name": string(examples=["pro"]),
        "limits": obj(description="apiCalls, llmTokens, storage, requestsPerMinute, lifetimeApiCalls; "
                      "null is unlimited.", additionalProperties=LIMIT),
        "price": nullable(obj({
            "amount": MONEY, "currency": CURRENCY, "interval": enum("month", "year"),
            "priceId": nullable(string("The Stripe Price for /v1/billing/checkout.")),
        })),
        "current": boolean("True for the account's plan."),
    }),
    "Subscription": obj({
        "id": nullable(string()), "plan": string(examples=["pro"]),
        "status": string("Stripe's status, or none.", examples=["active"]),
        "currentPeriodStart": OPTIONAL_TIME, "currentPeriodEnd": OPTIONAL_TIME,
        "cancelAtPeriodEnd": boolean(), "cancelAt": OPTIONAL_TIME,
    }),
    "SetupRequest": obj({"payment_method_id": string(examples=["pm_card_visa"])},
                        {"plan": {**ref("PaidPlanName"), "description": "Default pro."}}),
    "Setup": obj({"tier": string(), "call_limit": LIMIT, "subscription": ref("Subscription"),
                  "message": string()}),
    "SetupConfirmRequest": obj({"subscription_id": string(
        "The subscription_id of setup's 402 requires_action.", examples=["sub_1Q..."])}),
    "CancelResult": obj({"success": const(True), "cancelAt": OPTIONAL_TIME,
                         "subscription": ref("Subscription")}),
    "ResumeResult": obj({"success": const(True), "subscription": ref("Subscription")}),
    "CheckoutRequest": obj({"priceId": string(examples=["price_1Q..."]), "successUrl": URL,
                            "cancelUrl": URL}),
    "PortalRequest": obj({"returnUrl": URL}),
    "Url": obj({"url": string("Send the user here.", format="uri")}),

    # Invoices
    "Invoice": obj({
        "id": string(examples=["inv_Qm3x..."]), "object": const("invoice"),
        "number": string(examples=["ACME-0001"]),
        "stripe_invoice_number": nullable(string(
            "Stripe's number for the same invoice (subscription invoices); null for top-up "
            "receipts and usage statements, which Stripe does not invoice.",
            examples=["7081B96C-0002"])),
        "kind": enum(*INVOICE_KINDS, description=(
            "receipt: a card top-up; subscription: a subscription's first invoice; renewal: "
            "a later period's; usage_statement: a month of rated usage drawn from credit.")),
        "amount": MONEY, "currency": CURRENCY, "status": string(examples=["paid"]),
        "issuedAt": TIME, "paidAt": OPTIONAL_TIME, "periodStart": OPTIONAL_TIME,
        "periodEnd": OPTIONAL_TIME, "pdfUrl": string(format="uri"),
    }, {"lines": array(obj({"description": string(), "quantity": integer(),
                            "unit_amount": integer(
                                "The price of one; when the amount is not a whole multiple "
                                "of the quantity, amount / quantity rounded to a minor unit."),
                            "amount": integer()}))}),

    # Price plans
    "PriceTier": obj({"up_to": nullable(integer(minimum=1)), "unit_amount": integer(minimum=0)},
                     {"flat_amount": integer(minimum=0)}),
    "PriceCharge": obj({
        "meter": nullable(string(examples=["apiCalls"])), "model": enum(*PRICING_MODELS),
        "included_units": integer(minimum=0),
    }, {"unit_amount": nullable(integer(minimum=0)), "package_size": nullable(integer(minimum=1)),
        "package_amount": nullable(integer(minimum=0)), "tiers": array(ref("PriceTier"))}),
    "PricePlan": obj({
        "id": string(examples=["pp_..."]), "object": const("price_plan"), "name": string(),
        "currency": CURRENCY, "charges": array(ref("PriceCharge")), "created_at": TIME,
    }),
    "CreatePricePlanRequest": obj({
        "name": string(minLength=1, maxLength=100, examples=["Metered"]),
        "charges": array(obj({"meter": string(examples=["apiCalls"]), "model": enum(*PRICING_MODELS)}, {
            "unit_amount": integer("per_unit: price of one unit.", minimum=0),
            "tiers": array(ref("PriceTier"), "graduated or volume; the last has up_to null.",
                           minItems=1, maxItems=20),
            "package_size": integer("package: units in one package.", minimum=1),
            "package_amount": integer(minimum=0), "included_units": integer(minimum=0),
        }), minItems=1, maxItems=20),
    }, {"currency": NEW_CURRENCY | {"description": "Default usd. " + NEW_CURRENCY["description"]}}),
    "AssignPricePlanRequest": obj({"price_plan_id": nullable(string("null takes the plan off."))}, {
        "reason": string("Why; it goes into the audit log.", maxLength=500)}),
    "PricePlanAssignment": obj({"account_id": ACCOUNT_ID, "price_plan_id": nullable(string())}),

    # Staff
    "Account": obj({
        "id": ACCOUNT_ID, "object": const("account"), "customer_id": string(), "name": string(),
        "plan": string(examples=["free"]), "currency": CURRENCY, "balance": MONEY,
        "time_zone": string(), "grace_period_ends_at": OPTIONAL_TIME, "created_at": OPTIONAL_TIME,
    }),
    "Customer": obj({
        "id": string(examples=["cust_..."]), "object": const("customer"), "name": string(),
        "primaryEmail": string(), "stripe_customer_id": nullable(string()), "created_at": OPTIONAL_TIME,
    }, {"accounts": array(ref("Account"))}),
    "CreateCustomerRequest": obj({"name": string(minLength=1, maxLength=200, examples=["Acme"]),
                                  "primaryEmail": string(format="email", examples=["billing@acme.test"])},
                                 {"id": string("Your id for the customer.",
                                               pattern="^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")}),
    "CreateAccountRequest": obj({"name": string(minLength=1, maxLength=200)},
                                {"currency": nullable(NEW_CURRENCY),
                                 "plan": nullable(ref("PlanName"))}),
    "CreditGrant": credit_grant(),
    "CreditGrantCreated": credit_grant(balance=integer("The account's balance after the grant.")),
    "GrantCreditRequest": obj({"amount": integer(minimum=1, examples=[5000]),
                               "reason": string(REASON, minLength=MIN_REASON_LENGTH,
                                                 maxLength=MAX_REASON_LENGTH,
                                                 examples=["Goodwill for the outage"])},
                              {"note": nullable(string(
                                  "Shown to the customer beside the credit (the reason is not).",
                                  maxLength=200)),
                               "effective_from": nullable(string(format="date-time")),
                               "expires_at": nullable(string(format="date-time"))}),

    # Stripe Customer Portal configurations (Stripe's own object)
    "PortalConfiguration": obj({"id": string(examples=["bpc_..."]),
                                "object": const("billing_portal.configuration")},
                               description="Stripe's billing_portal.configuration object.",
                               additionalProperties=True),
    "PortalConfigurationRequest": obj(optional={
        "features": obj(description="Stripe's features: customer_update, invoice_history, "
                        "payment_method_update, subscription_cancel, subscription_update.",
                        additionalProperties=True),
        "headline": string(maxLength=60), "default_return_url": nullable(URL),
        "active": boolean("Updates only."),
    }),

    # Webhooks
    "WebhookReceipt": obj({"received": const(True), "id": string(), "type": string(),
                           "status": string(), "detail": nullable(string())}),
}
