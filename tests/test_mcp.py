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
from tests.support.wallets import Wallet

READ_TOOLS = {"get-account", "get-billing-balance", "get-usage", "get-subscription", "list-invoices",
              "list-ledger-entries", "list-price-plans", "list-api-keys", "get-billing",
              "get-billing-stripe-config", "list-usage-meters", "list-credits", "list-plans",
              "list-wallets", "list-payment-methods", "get-auto-recharge"}
MUTATING_TOOLS = {"create-payment-intent", "confirm-payment", "ingest-events", "authorize",
                  "rotate-api-key", "upgrade-plan", "cancel-subscription", "resume-subscription",
                  "create-checkout-session", "create-billing-portal-session", "link-wallet",
                  "save-payment-method", "set-default-payment-method", "set-auto-recharge"}
# Only a server running with a staff key lists these (the seeds' names: Togai, Stripe's portal).
STAFF_TOOLS = {"list-customers", "create-customer", "get-customer", "list-accounts",
               "create-price-plan", "grant-credit", "stripe-list-portal-configurations",
               "stripe-create-portal-configuration", "stripe-retrieve-portal-configuration",
               "stripe-update-portal-configuration", "stripe-create-portal-session"}
# Those whose call reaches Stripe (openWorldHint).
STRIPE_TOOLS = {"list-plans", "create-payment-intent", "confirm-payment", "upgrade-plan",
                "list-payment-methods", "save-payment-method", "set-default-payment-method",
                "remove-payment-method", "set-auto-recharge",
                "cancel-subscription", "resume-subscription", "create-checkout-session",
                "create-billing-portal-session",
                "stripe-list-portal-configurations", "stripe-create-portal-configuration",
                "stripe-retrieve-portal-configuration", "stripe-update-portal-configuration",
                "stripe-create-portal-session"}


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


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def call_error(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = result.content[0].text  # "Error executing tool ...: {the API's error answer}"
    return json.loads(text[text.index("{"):])


def test_tools_and_their_annotations(tally):
    async def session(client: Client) -> list:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in over_stdio(tally["env"], tally["demo"]["api_key"], session)}
    staff_tools = {t.name: t for t in over_stdio(tally["env"], tally["staff_key"], session)}
    # No staff-only tool to a customer's key.
    assert set(tools) == READ_TOOLS | MUTATING_TOOLS | {"unlink-wallet", "remove-payment-method"}
    assert set(staff_tools) >= STAFF_TOOLS | {"ingest-events", "list-invoices", "list-usage-meters"}
    assert not set(staff_tools) & {"get-billing-balance", "create-payment-intent", "rotate-api-key"}
    every = tools | staff_tools
    for name, tool in every.items():
        hints = tool.annotations
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint,
                            hints.open_world_hint), name
        assert hints.open_world_hint is (name in STRIPE_TOOLS), name
        assert tool.input_schema.get("additionalProperties") is False, name
    for name in READ_TOOLS | {"list-customers", "get-customer", "list-accounts",
                              "stripe-list-portal-configurations",
                              "stripe-retrieve-portal-configuration"}:
        hints = every[name].annotations
        assert hints.read_only_hint is True and hints.destructive_hint is False, name
    for name in MUTATING_TOOLS | STAFF_TOOLS - {"list-customers", "get-customer", "list-accounts",
                                                "stripe-list-portal-configurations",
                                                "stripe-retrieve-portal-configuration"}:
        tool = every[name]
        assert tool.annotations.read_only_hint is False, name
        # The required key is what makes a repeated call with the same arguments change nothing.
        assert tool.annotations.idempotent_hint is True, name
        assert "idempotency_key" in tool.input_schema["required"], name
        assert "same key" in tool.description, name
    destructive = {n for n, t in every.items() if t.annotations.destructive_hint}
    assert destructive == {"rotate-api-key", "cancel-subscription", "stripe-update-portal-configuration",
                           "unlink-wallet", "remove-payment-method"}
    # Unlinking and removing a card are DELETEs: no key needed, a second call changes nothing.
    assert every["unlink-wallet"].annotations.idempotent_hint is True
    assert every["remove-payment-method"].annotations.idempotent_hint is True


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
        # A staff key's server has no customer tools; an unknown argument is refused.
        unknown = await client.call_tool("get-billing-balance", {})
        assert unknown.is_error and "Unknown tool" in unknown.content[0].text
        extra = await client.call_tool("grant-credit", {
            "account_id": account_id, "amount": 5, "reason": "Outage credit",
            "idempotency_key": "mcp-grant-2", "amout": 5})
        assert extra.is_error and "amout" in extra.content[0].text

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
        assert "TALLY_API_KEY" in rotated["server_key"]  # without a key file: keep it yourself
        again = await call(client, "rotate-api-key", idempotency_key="mcp-rotate-1")
        assert again == {k: v for k, v in rotated.items() if k != "server_key"} | {"api_key": None}
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


def test_togai_and_portal_tools_with_a_staff_key(tally):
    async def session(client: Client) -> None:
        created = await call(client, "create-customer", id="mcp-togai", name="Togai Co",
                             primaryEmail="ap@togai.example", idempotency_key="mcp-cust-1",
                             billingAddress={"city": "Pune", "country": "IN"},
                             account={"id": "mcp-togai-main", "name": "Main", "invoiceCurrency": "USD"})
        assert created["account"]["invoiceCurrency"] == "USD"
        assert created["billingAddress"]["city"] == "Pune"
        fetched = await call(client, "get-customer", customer_id="mcp-togai")
        assert [a["id"] for a in fetched["accounts"]] == ["mcp-togai-main"]
        listed = await call(client, "list-customers", q="togai.example")
        assert [c["id"] for c in listed["data"]] == ["mcp-togai"]
        accounts = await call(client, "list-accounts", customer_id="mcp-togai")
        assert [a["id"] for a in accounts["data"]] == ["mcp-togai-main"]
        ingested = await call(client, "ingest-events", idempotency_key="mcp-events-1", events=[
            {"id": "mcp-e1", "schemaName": "llm_completion", "accountId": "mcp-togai-main",
             "attributes": [{"name": "tokens", "value": "42"}]},
            {"id": "mcp-e2", "schemaName": "api_call", "accountId": "nobody"}])
        assert ingested["accepted"] == 1 and ingested["rejected"][0]["code"] == "account_not_found"
        meters = await call(client, "list-usage-meters", event_name="llm_completion")
        assert [m["name"] for m in meters["data"]] == ["llmTokens"]
        plan = await call(client, "create-price-plan", name="MCP metered", idempotency_key="mcp-plan-1",
                          charges=[{"meter": "apiCalls", "model": "per_unit", "unit_amount": 2}])
        plans = await call(client, "list-price-plans", limit=100)
        assert plan["id"] in [p["id"] for p in plans["data"]]
        invoices = await call(client, "list-invoices", account_id="mcp-togai-main")
        assert invoices["data"] == []
        config = await call(client, "stripe-create-portal-configuration", idempotency_key="mcp-bpc-1",
                            features={"invoice_history": {"enabled": True}},
                            business_profile={"headline": "Via MCP"})
        assert config["object"] == "billing_portal.configuration"
        configs = await call(client, "stripe-list-portal-configurations", limit=100)
        assert config["id"] in [c["id"] for c in configs["data"]]
        assert (await call(client, "stripe-retrieve-portal-configuration",
                           configuration=config["id"]))["business_profile"]["headline"] == "Via MCP"
        updated = await call(client, "stripe-update-portal-configuration", configuration=config["id"],
                             name="MCP portal", idempotency_key="mcp-bpc-2")
        assert updated["name"] == "MCP portal"
        opened = await call(client, "stripe-create-portal-session", customer="mcp-togai",
                            configuration=config["id"], return_url="https://togai.example/back",
                            idempotency_key="mcp-bps-1")
        assert opened["object"] == "billing_portal.session" and opened["url"].startswith("http")

    over_stdio(tally["env"], tally["staff_key"], session)


def test_plan_and_stripe_tools_with_an_account_key(tally):
    fresh_key = json.loads(flask_cli(tally["env"], "seed-demo"))["api_key"]

    async def session(client: Client) -> None:
        assert (await call(client, "get-billing-stripe-config"))["stripe_publishable_key"] == "pk_test_tally"
        assert (await call(client, "get-billing"))["tier"] == "free"
        plans = await call(client, "list-plans")
        price = next(p["price"]["priceId"] for p in plans["data"] if p["name"] == "pro")
        checkout = await call(client, "create-checkout-session", priceId=price,
                              successUrl="https://acme.example/ok", cancelUrl="https://acme.example/no",
                              idempotency_key="mcp-checkout-1")
        assert checkout["url"].startswith("http")
        upgraded = await call(client, "upgrade-plan", payment_method_id="pm_card_visa",
                              idempotency_key="mcp-setup-1")
        assert upgraded["tier"] == "pro"
        cancelled = await call(client, "cancel-subscription", idempotency_key="mcp-cancel-1")
        assert cancelled["success"] is True and cancelled["cancelAt"]
        resumed = await call(client, "resume-subscription", idempotency_key="mcp-resume-1")
        assert resumed["success"] is True
        portal = await call(client, "create-billing-portal-session", returnUrl="https://acme.example/",
                            idempotency_key="mcp-portal-1")
        assert portal["url"].startswith("http")
        assert (await call(client, "get-billing"))["tier"] == "pro"
        # Lit's wallets: link one with a message it signed, list it, unlink it.
        wallet = Wallet()
        linked = await call(client, "link-wallet", idempotency_key="mcp-wallet-1", **wallet.proof())
        assert linked["address"] == wallet.address
        listed = await call(client, "list-wallets")
        assert [w["address"] for w in listed["data"]] == [wallet.address]
        assert (await call(client, "unlink-wallet", address=wallet.address))["deleted"] is True
        gone = await call_error(client, "unlink-wallet", address=wallet.address)
        assert gone["status"] == 404

    over_stdio(tally["env"], fresh_key, session)


def test_saved_cards_one_click_top_up_and_auto_recharge_tools(tally):
    """An agent saves a card, tops up with it in one call, sets auto-recharge, then undoes it."""
    fresh_key = json.loads(flask_cli(tally["env"], "seed-demo"))["api_key"]

    async def session(client: Client) -> None:
        saved = await call(client, "save-payment-method", payment_method_id="pm_card_visa",
                           idempotency_key="mcp-card-1")
        card = saved["id"]
        assert saved["last4"] == "4242"  # the default when it is the first (upgrade-plan saves one)
        assert (await call(client, "set-default-payment-method", payment_method_id=card,
                           idempotency_key="mcp-card-2"))["default"] is True
        listed = await call(client, "list-payment-methods")
        assert listed["data"][0]["id"] == card and listed["data"][0]["default"] is True
        before = (await call(client, "get-billing-balance"))["balance"]
        paid = await call(client, "create-payment-intent", amount=2500, payment_method_id=card,
                          idempotency_key="mcp-card-topup")
        assert paid["status"] == "succeeded" and paid["credited"] is True
        assert (await call(client, "get-billing-balance"))["balance"] == before + 2500
        bad = await call_error(client, "set-auto-recharge", enabled=True, threshold=1000,
                               method="fixed", idempotency_key="mcp-recharge-0")
        assert bad["status"] == 400 and bad["param"] == "amount"
        on = await call(client, "set-auto-recharge", enabled=True, threshold=1000, amount=2500,
                        monthly_limit=10000, idempotency_key="mcp-recharge-1")
        assert on["enabled"] is True and on["amount"] == 2500 and on["status"] == "idle"
        assert (await call(client, "get-auto-recharge"))["monthly_limit"] == 10000
        off = await call(client, "set-auto-recharge", enabled=False, threshold=1000, amount=2500,
                         idempotency_key="mcp-recharge-2")
        assert off["enabled"] is False
        assert (await call(client, "remove-payment-method", payment_method_id=card))["id"] == card
        gone = await call_error(client, "remove-payment-method", payment_method_id=card)
        assert gone["status"] == 404
        assert card not in [c["id"] for c in (await call(client, "list-payment-methods"))["data"]]

    over_stdio(tally["env"], fresh_key, session)


def test_the_servers_own_key_rotated_never_strands_it(tally, tmp_path):
    key_file = tmp_path / "tally.key"
    key_file.write_text(json.loads(flask_cli(tally["env"], "seed-demo"))["api_key"] + "\n")
    env = tally["env"] | {"TALLY_API_KEY_FILE": str(key_file)}

    async def rotate(client: Client) -> dict[str, Any]:
        rotated = await call(client, "rotate-api-key", idempotency_key="mcp-own-rotate")
        assert str(key_file) in rotated["server_key"]
        assert key_file.read_text().strip() == rotated["api_key"]  # saved before the answer
        assert (await call(client, "get-account"))["account_id"] == tally["demo"]["account_id"]
        return rotated

    rotated = over_stdio(env, "", rotate)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"

    async def restarted(client: Client) -> None:
        # The next start reads the rotated key from the file.
        assert (await call(client, "get-account"))["account_id"] == tally["demo"]["account_id"]
        # The server's key rotated elsewhere (here by key id, so the server does not switch):
        elsewhere = await call(client, "rotate-api-key", key_id=rotated["key"]["id"],
                               idempotency_key="mcp-elsewhere")
        stranded = await call_error(client, "get-account")
        assert stranded["status"] == 401 and "TALLY_API_KEY_FILE" in stranded["hint"]
        # Putting the new key in the file is enough: the server reads it again, no restart.
        key_file.write_text(elsewhere["api_key"] + "\n")
        assert (await call(client, "get-account"))["account_id"] == tally["demo"]["account_id"]

    over_stdio(env, "", restarted)
