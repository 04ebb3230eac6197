"""Tally's operations as MCP tools for AI agents (the official `mcp` package).

`flask --app app mcp` serves them over stdio; `--transport streamable-http --port N` over
HTTP at `/mcp`. The server acts with one Tally API key, `TALLY_API_KEY` from the
environment, and every tool is one call of the JSON API made in-process through Flask's
test client: the same validation, key scopes, rate limit, `Idempotency-Key` and error
answers as over HTTP, and no second copy of any rule.

Annotations follow the MCP definitions: `readOnlyHint` for tools that change nothing;
`destructiveHint` only where something existing stops working (rotating revokes the old
key); `idempotentHint` is true for every tool, because each mutating tool requires an
`idempotency_key` that is sent as the `Idempotency-Key` header, so calling it again with
the same arguments within 24 hours returns the first answer and changes nothing.
"""

from __future__ import annotations

import contextvars
import json
import threading
from typing import Annotated, Any
from urllib.parse import quote

from flask import Flask
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True)
REPLACE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)

IdempotencyKey = Annotated[str, Field(
    min_length=1, max_length=255,
    description="A new unique string (e.g. a UUID) for this operation. If the call fails or times "
                "out, retry with the SAME key: Tally then returns the first answer instead of "
                "doing it twice. Use a new key only for a new operation.")]
Limit = Annotated[int, Field(ge=1, le=100, description="How many items (1-100).")]
Cursor = Annotated[str | None, Field(description="An item id: the page after it (starting_after) "
                                                 "or before it (ending_before).")]

RETRY_NOTE = (" Pass an idempotency_key and reuse the same key when you retry this call, so it "
              "happens once.")


class TallyApi:
    """Calls the JSON API in-process with the server's key, as a client over HTTP would."""

    def __init__(self, app: Flask, api_key: str) -> None:
        self.app = app
        self.api_key = api_key
        self._lock = threading.Lock()  # the key changes when the server rotates its own

    def call(self, method: str, path: str, *, body: dict[str, Any] | None = None,
             query: dict[str, Any] | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        with self._lock:
            headers = {"X-Api-Key": self.api_key}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        params = {k: v for k, v in (query or {}).items() if v is not None}
        # A fresh context: each call gets its own request and app context (and so its own
        # database session), whatever context the caller or its thread carries.
        response = contextvars.Context().run(
            self.app.test_client().open, path, method=method, json=body, query_string=params,
            headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        data = response.get_json(silent=True)
        if response.status_code >= 400:
            raise ToolError(json.dumps({"status": response.status_code, **(data or {})}))
        return data

    def use_key(self, api_key: str) -> None:
        with self._lock:
            self.api_key = api_key


def build_server(api: TallyApi) -> MCPServer:
    server = MCPServer(
        "tally",
        instructions="Tally: prepaid credit, usage and invoices of one account (or, with a staff "
                     "key, support actions). Amounts are integers in minor units (2500 = 25.00). "
                     "Every mutating tool takes an idempotency_key: reuse it when you retry.")

    def tool(name: str, annotations: ToolAnnotations, description: str):
        return server.tool(name=name, annotations=annotations, description=description)

    @tool("get-account", READ, "The account behind the key: id, email, name and plan (tier).")
    def get_account() -> dict[str, Any]:
        return api.call("GET", "/v1/me")

    @tool("get-billing-balance", READ,
          "Prepaid credit that can be spent now (`balance`, minor units) and its currency.")
    def get_billing_balance() -> dict[str, Any]:
        return api.call("GET", "/v1/billing/balance")

    @tool("get-usage", READ, "Usage this billing period per meter, with the plan's limits and spend.")
    def get_usage() -> dict[str, Any]:
        return api.call("GET", "/v1/billing/usage")

    @tool("get-subscription", READ, "The Pro subscription, if any: status, period, cancellation.")
    def get_subscription() -> dict[str, Any]:
        return api.call("GET", "/v1/billing/subscription")

    @tool("list-invoices", READ, "Invoices and receipts, newest first, a page at a time.")
    def list_invoices(limit: Limit = 10, starting_after: Cursor = None,
                      ending_before: Cursor = None) -> dict[str, Any]:
        return api.call("GET", "/v1/billing/invoices", query={
            "limit": limit, "starting_after": starting_after, "ending_before": ending_before})

    @tool("list-ledger-entries", READ, "Every change of the balance (top-ups, grants, usage), newest first.")
    def list_ledger_entries(limit: Limit = 10, starting_after: Cursor = None,
                            ending_before: Cursor = None) -> dict[str, Any]:
        return api.call("GET", "/v1/billing/ledger", query={
            "limit": limit, "starting_after": starting_after, "ending_before": ending_before})

    @tool("list-price-plans", READ,
          "The account's usage price plan (a staff key: every price plan), with its charges.")
    def list_price_plans(limit: Limit = 10, starting_after: Cursor = None,
                         ending_before: Cursor = None) -> dict[str, Any]:
        return api.call("GET", "/v1/price-plans", query={
            "limit": limit, "starting_after": starting_after, "ending_before": ending_before})

    @tool("list-api-keys", READ, "The account's active API keys (prefixes only, never the secret).")
    def list_api_keys(limit: Limit = 10, starting_after: Cursor = None,
                      ending_before: Cursor = None) -> dict[str, Any]:
        return api.call("GET", "/v1/keys", query={
            "limit": limit, "starting_after": starting_after, "ending_before": ending_before})

    @tool("create-payment-intent", ADD,
          "Start a card top-up of `amount` minor units: returns a Stripe PaymentIntent id and "
          "client_secret for the customer to pay; then call confirm-payment." + RETRY_NOTE)
    def create_payment_intent(amount: Annotated[int, Field(description="Minor units, e.g. 2500.")],
                              idempotency_key: IdempotencyKey) -> dict[str, Any]:
        return api.call("POST", "/v1/billing/payment-intents", body={"amount": amount},
                        idempotency_key=idempotency_key)

    @tool("confirm-payment", ADD,
          "After the PaymentIntent succeeded, credit it to the balance (exactly once, whatever "
          "happens). `credited` is true only on the call that credited." + RETRY_NOTE)
    def confirm_payment(payment_intent_id: Annotated[str, Field(pattern=r"^pi_")],
                        idempotency_key: IdempotencyKey) -> dict[str, Any]:
        return api.call("POST", "/v1/billing/confirm-payment",
                        body={"payment_intent_id": payment_intent_id}, idempotency_key=idempotency_key)

    @tool("ingest-events", ADD,
          "Record usage events `[{id, event_name, timestamp?, properties}]` (1 to 1,000); an "
          "event id seen before is counted once." + RETRY_NOTE)
    def ingest_events(events: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=1000)],
                      idempotency_key: IdempotencyKey) -> dict[str, Any]:
        return api.call("POST", "/v1/events", body={"events": events}, idempotency_key=idempotency_key)

    @tool("authorize", ADD,
          "Ask whether one more call is allowed and record it (402 over a limit or out of credit)."
          + RETRY_NOTE)
    def authorize(idempotency_key: IdempotencyKey, event_name: str = "api_call", quantity: int = 1,
                  id: Annotated[str | None, Field(description="Your id for this call.")] = None,
                  ) -> dict[str, Any]:
        body: dict[str, Any] = {"event_name": event_name, "quantity": quantity}
        if id is not None:
            body["id"] = id
        return api.call("POST", "/v1/authorize", body=body, idempotency_key=idempotency_key)

    @tool("rotate-api-key", REPLACE,
          "Replace an API key: returns the new key (shown only here); the old key stops working "
          "at once. Without key_id it rotates the key this server uses, and the server switches to "
          "the new one." + RETRY_NOTE)
    def rotate_api_key(idempotency_key: IdempotencyKey,
                       key_id: Annotated[str | None, Field(description="key_... (default: this "
                                                                       "server's key)")] = None,
                       ) -> dict[str, Any]:
        rotated = api.call("POST", "/v1/keys/rotate", body={"key_id": key_id} if key_id else {},
                           idempotency_key=idempotency_key)
        if key_id is None and rotated.get("api_key"):  # a replay answers the key as null
            api.use_key(rotated["api_key"])
        return rotated

    @tool("grant-credit", ADD,
          "Staff key only: give an account free credit of `amount` minor units with a reason "
          "(audited), optionally from `effective_from` and expiring at `expires_at` (RFC 3339)."
          + RETRY_NOTE)
    def grant_credit(account_id: str, amount: Annotated[int, Field(gt=0)], reason: str,
                     idempotency_key: IdempotencyKey, effective_from: str | None = None,
                     expires_at: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"amount": amount, "reason": reason}
        for name, value in (("effective_from", effective_from), ("expires_at", expires_at)):
            if value is not None:
                body[name] = value
        return api.call("POST", f"/v1/accounts/{quote(account_id, safe='')}/credits", body=body,
                        idempotency_key=idempotency_key)

    return server


def run(app: Flask, api_key: str, *, transport: str = "stdio", host: str = "127.0.0.1",
        port: int = 8765) -> None:
    server = build_server(TallyApi(app, api_key))
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
