"""The MCP server as an agent sees it: `flask --app app mcp` spawned over stdio (and once over
streamable HTTP) by the `mcp` package's client, against a migrated and seeded SQLite file
and the test localstripe."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.support.localstripe import REPO_ROOT, free_port
from tests.support.payments import pay
from tests.support.servers import base_env, flask_cli

READ_TOOLS = {"get-account", "get-billing-balance", "get-usage", "get-subscription", "list-invoices",
              "list-ledger-entries", "list-price-plans", "list-api-keys"}
MUTATING_TOOLS = {"create-payment-intent", "confirm-payment", "ingest-events", "authorize",
                  "rotate-api-key", "grant-credit"}


@pytest.fixture(scope="module")
def tally(tmp_path_factory: pytest.TempPathFactory, localstripe_url: str) -> dict[str, Any]:
    """A migrated SQLite file with the demo customer and a staff user; their keys. Shared by
    the tests here: only test_a_retried_tool_call_acts_once changes anything."""
    tmp_path = tmp_path_factory.mktemp("mcp")
    env = base_env(f"sqlite:///{tmp_path / 'mcp.db'}", tmp_path, STRIPE_SECRET_KEY="sk_test_tally",
                   STRIPE_PUBLISHABLE_KEY="pk_test_tally", STRIPE_API_BASE=localstripe_url)
    flask_cli(env, "db", "upgrade")
    demo = json.loads(flask_cli(env, "seed-demo"))
    staff = json.loads(flask_cli(env, "create-staff", "--email", "ops@tally.test",
                                 "--password", "staff-pass-123"))
    return {"env": env, "demo": demo, "staff_key": staff["api_key"]}


def over_stdio(env: dict[str, str], api_key: str, session: Callable[[Client], Awaitable[Any]]) -> Any:
    params = StdioServerParameters(command=sys.executable, args=["-m", "flask", "--app", "app", "mcp"],
                                   env=env | {"TALLY_API_KEY": api_key}, cwd=str(REPO_ROOT))

    async def main() -> Any:
        async with Client(params) as client:
            return await session(client)

    return anyio.run(main)


async def call(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def call_error(client: Client, name: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert result.is_error
    text = result.content[0].text  # "Error executing tool ...: {the API's error answer}"
    return json.loads(text[text.index("{"):])


def test_tools_and_their_annotations(tally):
    async def session(client: Client) -> list:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in over_stdio(tally["env"], tally["demo"]["api_key"], session)}
    assert set(tools) >= READ_TOOLS | MUTATING_TOOLS
    for name in READ_TOOLS:
        hints = tools[name].annotations
        assert hints.read_only_hint is True and hints.destructive_hint is False, name
    for name in MUTATING_TOOLS:
        tool = tools[name]
        assert tool.annotations.read_only_hint is False, name
        # The required key is what makes a repeated call with the same arguments change nothing.
        assert tool.annotations.idempotent_hint is True, name
        assert "idempotency_key" in tool.input_schema["required"], name
        assert "same key" in tool.description, name
    assert tools["rotate-api-key"].annotations.destructive_hint is True
    assert tools["grant-credit"].annotations.destructive_hint is False
    assert tools["create-payment-intent"].annotations.destructive_hint is False


def test_a_retried_tool_call_acts_once(tally, stripe_client):
    account_id = tally["demo"]["account_id"]

    async def staff_session(client: Client) -> None:
        first = await call(client, "grant-credit", account_id=account_id, amount=1500,
                           reason="Outage credit", idempotency_key="mcp-grant-1")
        again = await call(client, "grant-credit", account_id=account_id, amount=1500,
                           reason="Outage credit", idempotency_key="mcp-grant-1")
        assert again == first and first["amount"] == 1500
        reused = await call_error(client, "grant-credit", account_id=account_id, amount=900,
                                  reason="Outage credit", idempotency_key="mcp-grant-1")
        assert reused["status"] == 409 and reused["code"] == "idempotency_key_reused"
        # A staff key cannot act as a customer: the API's own answer comes through.
        refused = await call_error(client, "get-billing-balance")
        assert refused["status"] == 403 and refused["code"] == "key_scope"

    over_stdio(tally["env"], tally["staff_key"], staff_session)

    async def customer_session(client: Client) -> None:
        assert (await call(client, "get-billing-balance"))["balance"] == 1500
        intent = await call(client, "create-payment-intent", amount=2500, idempotency_key="mcp-topup-1")
        again = await call(client, "create-payment-intent", amount=2500, idempotency_key="mcp-topup-1")
        assert again == intent
        assert pay(stripe_client, intent["payment_intent_id"]) == "succeeded"
        confirmed = await call(client, "confirm-payment", payment_intent_id=intent["payment_intent_id"],
                               idempotency_key="mcp-confirm-1")
        retried = await call(client, "confirm-payment", payment_intent_id=intent["payment_intent_id"],
                             idempotency_key="mcp-confirm-1")
        assert confirmed == retried and confirmed["credited"] is True and confirmed["balance"] == 4000
        assert (await call(client, "get-billing-balance"))["balance"] == 4000
        ledger = await call(client, "list-ledger-entries", limit=10)
        assert [e["amount"] for e in ledger["data"]] == [2500, 1500]
        invoices = await call(client, "list-invoices", limit=1)
        assert len(invoices["data"]) == 1 and invoices["has_more"] is False
        bad = await call_error(client, "create-payment-intent", amount=1, idempotency_key="mcp-topup-2")
        assert bad["status"] == 400 and bad["code"] == "amount_out_of_range"
        # Rotating its own key: the server switches to the new key; a retry rotates nothing
        # and answers the same key without its secret (shown once), and the server keeps it.
        rotated = await call(client, "rotate-api-key", idempotency_key="mcp-rotate-1")
        assert rotated["api_key"].startswith("tly_")
        again = await call(client, "rotate-api-key", idempotency_key="mcp-rotate-1")
        assert again == rotated | {"api_key": None}
        assert (await call(client, "get-account"))["account_id"] == account_id
        keys = await call(client, "list-api-keys")
        assert rotated["key"]["id"] in [k["id"] for k in keys["data"]]

    over_stdio(tally["env"], tally["demo"]["api_key"], customer_session)


def test_streamable_http(tally):
    port = free_port()
    fresh_key = json.loads(flask_cli(tally["env"], "seed-demo"))["api_key"]  # another test rotates one
    env = tally["env"] | {"TALLY_API_KEY": fresh_key}
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "mcp", "--transport", "streamable-http",
             "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        raise RuntimeError(f"the MCP server did not start:\n{output.read()}") from None
                    time.sleep(0.1)

            async def main() -> tuple[set[str], dict[str, Any]]:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    names = {t.name for t in (await client.list_tools()).tools}
                    return names, await call(client, "get-billing-balance")

            names, balance = anyio.run(main)
            assert names >= READ_TOOLS | MUTATING_TOOLS
            assert balance["currency"] == "usd" and isinstance(balance["balance"], int)
        finally:
            process.terminate()
            process.wait(timeout=10)
