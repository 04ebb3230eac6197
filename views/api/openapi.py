"""The OpenAPI 3.1 document of the /v1 API (views/api_docs.py serves it and the API page).

Each operation is one `Op` line below: method, path, the Flask endpoint (its operationId),
the key kinds it takes, its body, parameters and answer. What every operation of a kind
shares (auth, the error answers, rate-limit headers, `Idempotency-Key`, pagination) is
added by `_operation`, in one place. The shapes are in views/api/openapi_schemas.py.
tests/test_openapi.py checks that the document and the registered routes agree;
tests/test_contract.py runs schemathesis against a live server with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from models.keys import KIND_ACCOUNT, KIND_STAFF, KIND_USAGE
from services import idempotency
from services.billing import plans
from services.ledger import topups
from services.pagination import DEFAULT_LIMIT, MAX_LIMIT
from views.api.openapi_schemas import SCHEMAS, Schema, array, enum, integer, list_of, obj, ref, string

ACCOUNT = (KIND_ACCOUNT,)
USAGE = (KIND_ACCOUNT, KIND_USAGE)
STAFF = (KIND_STAFF,)
PUBLIC = ()

TAGS = [
    ("Account", "Who the key belongs to, the balance and the ledger."),
    ("Top-ups", "Prepaid credit by card: create a PaymentIntent, pay it with Stripe.js, confirm."),
    ("Keys", "Account keys (everything) and usage keys (the gate, events, balance and usage)."),
    ("Metering", "The request gate, usage events, meters and usage."),
    ("Plans and subscriptions", "Plans, the subscription, Stripe Checkout and the Customer Portal."),
    ("Invoices", "Receipts for top-ups and subscription invoices."),
    ("Price plans", "Usage-based pricing: staff create and assign; accounts read theirs."),
    ("Staff", "Customers, accounts and credit grants, with a staff key. Every write is audited."),
    ("Customer Portal", "Stripe Customer Portal configurations (Stripe's object), with a staff key."),
    ("Webhooks", "Stripe calls this; signed with Stripe-Signature."),
    ("Meta", "This document."),
]


@dataclass(frozen=True)
class Param:
    name: str
    schema: Schema
    description: str = ""
    where: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # as in OpenAPI, /v1/keys/{key_id}
    endpoint: str  # the Flask endpoint without "api.": the operationId
    tag: str
    summary: str
    keys: tuple[str, ...]  # key kinds that may call it; () is public
    response: Schema | None = None
    status: int = 200
    body: Schema | None = None
    body_required: bool = True
    params: tuple[Param, ...] = ()
    paginated: bool = False
    stripe: bool = False  # calls Stripe: 502 when it refuses, 503 when it cannot be reached
    errors: tuple[int, ...] = ()  # statuses beyond those derived from the above
    description: str = ""
    media_type: str = "application/json"
    extra: dict[str, Any] = field(default_factory=dict)


def _query(name: str, schema: Schema, description: str = "") -> Param:
    return Param(name, schema, description)


OPERATIONS: list[Op] = [
    # Account
    Op("GET", "/v1/me", "me", "Account", "The key's account", ACCOUNT, ref("Me")),
    Op("GET", "/v1/billing", "billing", "Account", "Plan, all-time calls, balance", ACCOUNT,
       ref("Billing"), description="`calls_total` is the all-time count of apiCalls and `call_limit` "
       "its all-time cap; `over_limit` is true when a call would be refused now. Monthly limits are "
       "in GET /v1/billing/usage."),
    Op("GET", "/v1/billing/balance", "balance", "Account", "The balance", USAGE, ref("Balance")),
    Op("GET", "/v1/billing/ledger", "ledger_entries", "Account", "Ledger entries, newest first",
       ACCOUNT, list_of(ref("LedgerEntry")), paginated=True),
    Op("GET", "/v1/billing/config", "billing_config", "Top-ups", "The Stripe publishable key",
       PUBLIC, ref("StripeConfig")),
    Op("GET", "/v1/billing/stripe-config", "stripe_config", "Top-ups",
       "The Stripe publishable key (same as /v1/billing/config)", PUBLIC, ref("StripeConfig")),

    # Top-ups
    Op("POST", "/v1/billing/payment-intents", "payment_intents", "Top-ups", "Start a card top-up",
       ACCOUNT, ref("PaymentIntent"), body=ref("PaymentIntentRequest"), stripe=True,
       description="Pay `client_secret` with Stripe.js confirmCardPayment, then call "
       "POST /v1/billing/confirm-payment (the webhook credits it too, exactly once)."),
    Op("POST", "/v1/billing/create-payment-intent", "create_payment_intent", "Top-ups",
       "Start a card top-up (same as /v1/billing/payment-intents)", ACCOUNT, ref("PaymentIntent"),
       body=ref("PaymentIntentRequest"), stripe=True),
    Op("POST", "/v1/billing/confirm-payment", "confirm_payment", "Top-ups",
       "Credit a paid PaymentIntent, exactly once", ACCOUNT, ref("ConfirmPayment"),
       body=ref("ConfirmPaymentRequest"), stripe=True, errors=(404,),
       description="409 when the PaymentIntent has not succeeded or does not match what Tally created."),

    # Keys
    Op("GET", "/v1/keys", "list_keys", "Keys", "The account's active keys", ACCOUNT,
       list_of(ref("ApiKey")), paginated=True),
    Op("POST", "/v1/keys", "create_key", "Keys", "Create a key (shown once)", ACCOUNT,
       ref("IssuedApiKey"), status=201, body=ref("CreateKeyRequest"), body_required=False),
    Op("POST", "/v1/keys/rotate", "rotate_key", "Keys", "Rotate a key", ACCOUNT, ref("IssuedApiKey"),
       body=ref("RotateKeyRequest"), body_required=False, errors=(404,),
       description="The old key gets 401 from the moment this answers, on every worker."),
    Op("POST", "/v1/keys/{key_id}/revoke", "revoke_key", "Keys", "Revoke a key", ACCOUNT,
       ref("RevokedApiKey")),
    Op("DELETE", "/v1/keys/{key_id}", "delete_key", "Keys", "Revoke a key (same as POST .../revoke)",
       ACCOUNT, ref("RevokedApiKey")),

    # Metering
    Op("POST", "/v1/authorize", "authorize", "Metering", "The gate: may this key make this call?",
       USAGE, ref("Authorization"), body=ref("AuthorizeRequest"), body_required=False, errors=(402,),
       description="Checks the key, the rate limit and the plan limits (and prepaid credit for "
       "priced meters), then records the event, in one call. A refused call records nothing."),
    Op("POST", "/v1/events", "events", "Metering", "Ingest usage events (1 to 1,000)", USAGE,
       ref("IngestResult"), body={"anyOf": [ref("EventBatch"), ref("Event")]}, errors=(402,),
       description="`id` is the idempotency key per account, kept forever: a repeat is counted "
       "once and reported in `duplicates`. A body that is not this shape is a 400 and stores nothing."),
    Op("GET", "/v1/billing/usage", "usage", "Metering", "This period's usage against the limits",
       USAGE, ref("Usage")),
    Op("GET", "/v1/billing/settings", "get_settings", "Metering", "Time zone, spend cap, alerts",
       ACCOUNT, ref("Settings")),
    Op("POST", "/v1/billing/settings", "update_settings", "Metering", "Change time zone, spend cap, "
       "alerts", ACCOUNT, ref("Settings"), body=ref("SettingsRequest"), body_required=False),
    Op("GET", "/v1/meters", "list_meters", "Metering", "Meters", USAGE, list_of(ref("Meter")),
       paginated=True),
    Op("POST", "/v1/meters", "create_meter", "Metering", "Add a meter", STAFF, ref("Meter"),
       status=201, body=ref("CreateMeterRequest"), errors=(409,)),
    Op("GET", "/v1/meters/{name}/usage", "meter_usage", "Metering", "A meter's series by day or hour",
       USAGE, ref("MeterUsage"), params=(
           _query("from", string("Default: the start of this period.", format="date-time")),
           _query("to", string("Default: now (within this period).", format="date-time")),
           _query("granularity", enum("day", "hour"), "Default day."))),

    # Plans and subscriptions
    Op("GET", "/v1/billing/plans", "list_plans", "Plans and subscriptions", "Plans and prices",
       ACCOUNT, list_of(ref("Plan")), paginated=True, stripe=True),
    Op("POST", "/v1/billing/setup", "setup", "Plans and subscriptions", "Subscribe with a card",
       ACCOUNT, ref("Setup"), body=ref("SetupRequest"), stripe=True, errors=(402, 404, 409),
       description="Attaches the PaymentMethod (a `pm_...`, or one of Stripe's test ids such as "
       "`pm_card_visa`), makes it the default and subscribes to the plan; the new limits apply "
       "at once. A payment method Stripe cannot use is the caller's and changes nothing "
       "(nothing is charged): 404 `resource_missing` (no such payment method), 402 "
       "`card_declined`, or 400 `stripe_refused` (say, another customer's), each with `param` "
       "`payment_method_id`. A card whose bank asks for authentication (3-D Secure) is a 402 "
       "`requires_action` with `payment_intent_client_secret` and `subscription_id`: nothing is "
       "charged yet. Confirm the client secret with Stripe.js `confirmCardPayment`, then call "
       "POST /v1/billing/setup/confirm with the `subscription_id`."),
    Op("POST", "/v1/billing/setup/confirm", "setup_confirm", "Plans and subscriptions",
       "Finish a subscription after 3-D Secure", ACCOUNT, ref("Setup"),
       body=ref("SetupConfirmRequest"), stripe=True, errors=(402, 404),
       description="After a 402 `requires_action` from POST /v1/billing/setup and Stripe.js "
       "`confirmCardPayment`. Authenticated: the answer of a setup that needed no "
       "authentication (the upgrade happens once, whether this call or Stripe's `invoice.paid` "
       "webhook gets there first; calling again answers the same). Still waiting for "
       "authentication: 402 `requires_action` again. Failed or abandoned: 402 "
       "`subscription_incomplete`; the subscription is cancelled and its invoice voided, nothing "
       "was charged or is owed and the plan is unchanged. 404 for a subscription that is not the account's."),
    Op("GET", "/v1/billing/subscription", "get_subscription", "Plans and subscriptions",
       "The subscription", ACCOUNT, ref("Subscription")),
    Op("POST", "/v1/billing/cancel", "cancel", "Plans and subscriptions", "Cancel at period end",
       ACCOUNT, ref("CancelResult"), stripe=True, errors=(404,)),
    Op("POST", "/v1/billing/resume", "resume", "Plans and subscriptions", "Undo a cancellation",
       ACCOUNT, ref("ResumeResult"), stripe=True, errors=(404,)),
    Op("POST", "/v1/billing/checkout", "checkout", "Plans and subscriptions",
       "A Stripe Checkout page for a plan", ACCOUNT, ref("Url"), body=ref("CheckoutRequest"),
       stripe=True),
    Op("POST", "/v1/billing/portal", "portal", "Plans and subscriptions",
       "A Stripe Customer Portal session", ACCOUNT, ref("Url"), body=ref("PortalRequest"), stripe=True),

    # Invoices
    Op("GET", "/v1/billing/invoices", "list_invoices", "Invoices", "Invoices, newest first", ACCOUNT,
       list_of(ref("Invoice"), invoices=array(ref("Invoice"), "The same items as data.")),
       paginated=True),
    Op("GET", "/v1/accounts/{account_id}/invoices", "account_invoices", "Invoices",
       "An account's invoices (its own key, or staff)", (KIND_ACCOUNT, KIND_STAFF),
       list_of(ref("Invoice"), invoices=array(ref("Invoice"), "The same items as data.")),
       paginated=True),
    Op("GET", "/v1/invoices/{invoice_id}", "get_invoice", "Invoices", "An invoice with its lines",
       (KIND_ACCOUNT, KIND_STAFF), ref("Invoice")),
    Op("GET", "/v1/invoices/{invoice_id}/pdf", "invoice_pdf", "Invoices", "An invoice as PDF",
       (KIND_ACCOUNT, KIND_STAFF), {"type": "string", "contentMediaType": "application/pdf"},
       media_type="application/pdf"),

    # Price plans
    Op("GET", "/v1/price-plans", "list_price_plans", "Price plans",
       "Price plans (staff: all; an account: its own)", (KIND_ACCOUNT, KIND_STAFF),
       list_of(ref("PricePlan")), paginated=True),
    Op("POST", "/v1/price-plans", "create_price_plan", "Price plans", "Create a price plan", STAFF,
       ref("PricePlan"), status=201, body=ref("CreatePricePlanRequest"), errors=(404,)),
    Op("POST", "/v1/accounts/{account_id}/price-plan", "assign_price_plan", "Price plans",
       "Put an account on a price plan", STAFF, ref("PricePlanAssignment"),
       body=ref("AssignPricePlanRequest")),

    # Staff
    Op("GET", "/v1/customers", "staff_customers", "Staff", "Customers, newest first", STAFF,
       list_of(ref("Customer")), paginated=True, params=(
           _query("q", string("Email (customer's or any user's), name, customer or account id, "
                              "Stripe customer id.")),)),
    Op("POST", "/v1/customers", "staff_create_customer", "Staff", "Create a customer", STAFF,
       ref("Customer"), status=201, body=ref("CreateCustomerRequest"), errors=(409,),
       description="Togai's fields. 409 `customer_exists` for a taken `id`."),
    Op("GET", "/v1/customers/{customer_id}", "staff_customer", "Staff",
       "A customer with its accounts (recorded as a staff view)", STAFF, ref("Customer")),
    Op("GET", "/v1/customers/{customer_id}/accounts", "staff_customer_accounts", "Staff",
       "A customer's accounts", STAFF, list_of(ref("Account")), paginated=True),
    Op("POST", "/v1/customers/{customer_id}/accounts", "staff_create_account", "Staff",
       "Open an account for a customer", STAFF, ref("Account"), status=201,
       body=ref("CreateAccountRequest")),
    Op("GET", "/v1/accounts/{account_id}", "staff_account", "Staff", "An account", STAFF,
       ref("Account")),
    Op("GET", "/v1/accounts/{account_id}/credits", "staff_credits", "Staff",
       "An account's credit grants (staff, or the account's own key)", (KIND_STAFF, KIND_ACCOUNT),
       list_of(ref("CreditGrant")), paginated=True),
    Op("POST", "/v1/accounts/{account_id}/credits", "staff_grant_credit", "Staff", "Grant credit",
       STAFF, ref("CreditGrantCreated"), status=201, body=ref("GrantCreditRequest"),
       description="`effective_from` in the future schedules the grant; `expires_at` takes back "
       "what is left then. A replay with the same Idempotency-Key answers 200 with the same grant.",
       extra={"x-replay-status": 200}),

    # Customer Portal
    Op("GET", "/v1/billing-portal/configurations", "list_portal_configurations", "Customer Portal",
       "Portal configurations", STAFF, list_of(ref("PortalConfiguration")), paginated=True,
       stripe=True),
    Op("POST", "/v1/billing-portal/configurations", "create_portal_configuration", "Customer Portal",
       "Create a portal configuration", STAFF, ref("PortalConfiguration"), status=201,
       body=ref("PortalConfigurationRequest"), body_required=False, stripe=True),
    Op("GET", "/v1/billing-portal/configurations/{configuration_id}", "get_portal_configuration",
       "Customer Portal", "A portal configuration", STAFF, ref("PortalConfiguration"), stripe=True),
    Op("POST", "/v1/billing-portal/configurations/{configuration_id}", "update_portal_configuration",
       "Customer Portal", "Change a portal configuration", STAFF, ref("PortalConfiguration"),
       body=ref("PortalConfigurationRequest"), body_required=False, stripe=True),

    # Webhooks and this document
    Op("POST", "/v1/billing/webhook", "webhooks.receive", "Webhooks", "Stripe events", PUBLIC,
       ref("WebhookReceipt"), body=obj({"id": string(), "type": string()},
                                       description="A Stripe event.", additionalProperties=True),
       params=(Param("Stripe-Signature", string(), "Stripe's signature of the raw body.",
                     where="header", required=True),),
       errors=(400, 500, 503),
       description="Answers 2xx only after the work is committed; 500 on a transient failure, "
       "so Stripe retries. Also served at /billing/webhook."),
    Op("GET", "/v1/openapi.json", "api_docs.openapi", "Meta", "This OpenAPI document", PUBLIC,
       obj({"openapi": string(), "paths": obj(additionalProperties=True)}, additionalProperties=True)),
]


# Building the document ---------------------------------------------------------------

_ERRORS: dict[int, tuple[str, str]] = {  # status: (component name, description)
    400: ("BadRequest", "Bad input; `param` names the field."),
    401: ("Unauthorized", "No API key, or not a valid one (revoked, rotated, never existed)."),
    402: ("PaymentRequired", "Over a plan limit or out of prepaid credit (`usage_limit_exceeded`, "
                             "with `usage` and `upgrade_url`), the card was declined, or its "
                             "bank asks for 3-D Secure (`requires_action`)."),
    403: ("Forbidden", "A key of the wrong kind (`key_scope`)."),
    404: ("NotFound", "Not found, or not yours."),
    409: ("Conflict", "A conflict: the thing exists or is in the wrong state, or the "
                      "Idempotency-Key was used for another request (`idempotency_key_reused`) "
                      "or is still running (`idempotency_key_in_use`)."),
    413: ("PayloadTooLarge", "The body is over the size limit (2 MiB unless configured)."),
    415: ("UnsupportedMediaType", "A form body: send JSON with Content-Type: application/json."),
    429: ("TooManyRequests", "Over the plan's requests per minute; wait Retry-After seconds."),
    500: ("InternalError", "A transient failure; retry."),
    502: ("BadGateway", "Stripe refused the request."),
    503: ("ServiceUnavailable", "Stripe (or a webhook secret) is not reachable or not set up."),
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed in the window (a minute).",
    "X-RateLimit-Remaining": "Requests left in the window.",
    "X-RateLimit-Reset": "When the window resets, in Unix seconds.",
}
IDEMPOTENCY_PARAM = {
    "name": idempotency.HEADER, "in": "header", "required": False,
    "description": "A unique value per operation (a UUID), the same on every retry: the first "
                   "answer is replayed for 24 hours. With another request: 409 "
                   "`idempotency_key_reused`.",
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
}
PAGINATION_PARAMS = [
    {"name": "limit", "in": "query", "required": False,
     "description": f"How many items, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
    {"name": "starting_after", "in": "query", "required": False,
     "description": "The id of the last item of a page (a name for meters and plans): the page "
                    "after it.",
     "schema": {"type": "string"}},
    {"name": "ending_before", "in": "query", "required": False,
     "description": "The id of the first item of a page (a name for meters and plans): the page "
                    "before it.",
     "schema": {"type": "string"}},
]


def operation_id(op: Op) -> str:
    return op.endpoint.split(".")[-1] if "." in op.endpoint else op.endpoint


def flask_endpoint(op: Op) -> str:
    return op.endpoint if "." in op.endpoint else f"api.{op.endpoint}"


def is_mutating(op: Op) -> bool:
    """POSTs under the API blueprint take Idempotency-Key (not Stripe's webhook)."""
    return op.method == "POST" and flask_endpoint(op).startswith("api.")


def takes_json(op: Op) -> bool:
    """POST and DELETE under the API blueprint read any body as a JSON object (views/api)."""
    return op.method in ("POST", "DELETE") and flask_endpoint(op).startswith("api.")


def error_statuses(op: Op) -> list[int]:
    statuses = set(op.errors)
    if op.keys:
        statuses |= {401, 403, 429}
    if op.body is not None or op.params or op.paginated or takes_json(op) or "{" in op.path:
        statuses.add(400)  # a path parameter with a NUL character is a 400 (views/request_guard.py)
    if op.body is not None or takes_json(op):
        statuses.add(413)
    if takes_json(op):
        statuses.add(415)
    if "{" in op.path:
        statuses.add(404)
    if is_mutating(op):
        statuses.add(409)
    if op.stripe:
        statuses |= {502, 503}
    return sorted(statuses)


def _parameters(op: Op) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)]
    params += [{"name": p.name, "in": p.where, "required": p.required,
                **({"description": p.description} if p.description else {}), "schema": p.schema}
               for p in op.params]
    if op.paginated:
        params += [{"$ref": "#/components/parameters/" + name}
                   for name in ("limit", "starting_after", "ending_before")]
    if is_mutating(op):
        params.append({"$ref": "#/components/parameters/IdempotencyKey"})
    return params


def _operation(op: Op) -> dict[str, Any]:
    spec: dict[str, Any] = {"operationId": operation_id(op), "tags": [op.tag], "summary": op.summary}
    if op.description:
        spec["description"] = op.description
    if op.keys:
        spec["security"] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
        spec["x-key-kinds"] = list(op.keys)
    else:
        spec["security"] = []
    params = _parameters(op)
    if params:
        spec["parameters"] = params
    if op.body is not None:
        spec["requestBody"] = {"required": op.body_required,
                               "content": {"application/json": {"schema": op.body}}}
    ok: dict[str, Any] = {"description": "OK" if op.status == 200 else "Created",
                          "content": {op.media_type: {"schema": op.response or {}}}}
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS} if op.keys else {}
    if is_mutating(op):
        headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
    if headers:
        ok["headers"] = headers
    responses: dict[str, Any] = {str(op.status): ok}
    replay = op.extra.get("x-replay-status")
    if replay:
        responses[str(replay)] = {"description": "An Idempotency-Key replay: the same grant.",
                                  "content": ok["content"]}
    for status in error_statuses(op):
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    spec["responses"] = responses
    return spec


def _components() -> dict[str, Any]:
    low, high = topups.bounds()
    plan_names = [p.name for p in plans.all_plans()]
    schemas = dict(SCHEMAS)
    schemas["PaymentIntentRequest"] = obj({"amount": integer(
        f"Minor units, {low} to {high}.", minimum=low, maximum=high, examples=[2500])})
    paid = [p.name for p in plans.all_plans() if p.price is not None]
    schemas["PlanName"] = enum(*plan_names, description="A plan from the plans file.")
    schemas["PaidPlanName"] = enum(*paid, description="A plan with a price.") if paid else string()
    error_content = {"application/json": {"schema": ref("Error")}}
    responses: dict[str, Any] = {
        name: {"description": description, "content": error_content}
        for name, description in _ERRORS.values()}
    responses["PaymentRequired"]["content"] = {"application/json": {"schema": ref("PaymentRequiredError")}}
    responses["TooManyRequests"]["headers"] = {
        "Retry-After": {"description": "Seconds to wait.", "required": True,
                        "schema": {"type": "integer"}},
        **{name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS}}
    return {
        "schemas": schemas,
        "responses": responses,
        "parameters": {"IdempotencyKey": IDEMPOTENCY_PARAM,
                       **{p["name"]: p for p in PAGINATION_PARAMS}},
        "headers": {
            **{name: {"description": description, "schema": {"type": "integer"}}
               for name, description in _RATE_HEADERS.items()},
            "Idempotent-Replayed": {"description": "true on an answer replayed for an Idempotency-Key.",
                                    "schema": {"const": "true"}}},
        "securitySchemes": {
            "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                             "description": "A Tally API key (tly_...)."},
            "BearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "The same key as `Authorization: Bearer tly_...`."},
        },
    }


DESCRIPTION = """\
Tally's JSON API, for scripts and AI agents.

**Keys.** Send an API key as `X-Api-Key: tly_...` or `Authorization: Bearer tly_...`. An
*account* key can do everything for its account; a *usage* key only calls /v1/authorize,
/v1/events and reads balance and usage (for product servers); a *staff* key acts on
customers and accounts. Each operation lists the kinds it takes in `x-key-kinds`; another
kind gets 403 `key_scope`.

**Money** is integer minor units with an ISO currency: 2500 with usd is $25.00.

**Errors** all have one shape: `{"error", "code", "message", "param"?}` (`param` when one field
is at fault). Over a plan limit, 402 adds `usage` and `upgrade_url`. Over the plan's
requests per minute, 429 with `Retry-After`; every rate-limited answer carries
`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.

**Retries.** Every POST takes an optional `Idempotency-Key` header (up to 255 characters):
the first answer is stored for 24 hours and replayed to a retry with the same key.

**Lists** are `{"object": "list", "data": [...], "has_more"}`, newest first (meters and plans
keep their own order); page with `limit` (1-100, default 10), `starting_after` and
`ending_before` (item ids; names for meters and plans).
"""


def document(server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (under an app context: bounds and plans are configured)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Tally API", "version": "1", "description": DESCRIPTION},
        "tags": [{"name": name, "description": description} for name, description in TAGS],
        "paths": paths,
        "components": _components(),
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc

