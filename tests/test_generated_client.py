"""A client generated from the OpenAPI document works, as a user outside the repository
would make and use it: `openapi-python-client generate` on the served /v1/openapi.json,
with no configuration, must build a package without warnings or errors, which imports and
runs a short journey against a live server (the balance, a PaymentIntent, a key rotation,
a list page, an invoice PDF as bytes)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.payments import pay

VENV_BIN = Path(sys.executable).parent


def generate(doc: dict, where: Path) -> str:
    (where / "openapi.json").write_text(json.dumps(doc))
    done = subprocess.run(
        [str(VENV_BIN / "openapi-python-client"), "generate", "--path", "openapi.json",
         "--output-path", "generated_tally_client", "--meta", "none"],
        cwd=where, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    return done.stdout + done.stderr


def test_a_generated_python_client_builds_imports_and_works(live_server, customer, tmp_path,
                                                            monkeypatch, stripe_client):
    doc = httpx.get(f"{live_server.url}/v1/openapi.json").json()
    output = generate(doc, tmp_path)
    assert (tmp_path / "generated_tally_client" / "client.py").exists(), output
    assert "Warning" not in output and "Error" not in output, output

    monkeypatch.syspath_prepend(str(tmp_path))
    tally = importlib.import_module("generated_tally_client")
    models = importlib.import_module("generated_tally_client.models")

    def call(module: str) -> Any:  # an operation, as `from generated_tally_client.api.keys import rotate_key`
        return importlib.import_module(f"generated_tally_client.api.{module}")

    client = tally.AuthenticatedClient(base_url=live_server.url, token=customer.api_key)

    balance = call("account.balance").sync(client=client)
    assert isinstance(balance, models.Balance)
    assert (balance.balance, balance.posted_balance, balance.currency) == (0, 0, "usd")

    intent = call("top_ups.payment_intents").sync(
        client=client, body=models.PaymentIntentRequest(amount=2500), idempotency_key="client-journey-1")
    assert isinstance(intent, models.PaymentIntent)
    assert intent.amount == 2500 and intent.payment_intent_id.startswith("pi_")
    assert pay(stripe_client, intent.payment_intent_id) == "succeeded"  # as Stripe.js would
    confirmed = call("top_ups.confirm_payment").sync(
        client=client, body=models.ConfirmPaymentRequest(payment_intent_id=intent.payment_intent_id),
        idempotency_key="client-journey-2")
    assert isinstance(confirmed, models.ConfirmPayment)
    assert confirmed.credited is True and confirmed.balance == 2500

    rotated = call("keys.rotate_key").sync(client=client, body=models.RotateKeyRequest(),
                                      idempotency_key="client-journey-3")
    assert isinstance(rotated, models.IssuedApiKey) and rotated.api_key.startswith("tly_")
    refused = call("account.balance").sync_detailed(client=client)
    assert refused.status_code == 401 and refused.parsed.code == "invalid_api_key"

    client = tally.AuthenticatedClient(base_url=live_server.url, token=rotated.api_key)
    page = call("keys.list_keys").sync(client=client, limit=1)
    assert page.object_ == "list" and len(page.data) == 1 and page.has_more is False
    assert page.data[0].id == rotated.key.id

    receipts = call("invoices.list_invoices").sync(client=client, limit=10)
    assert [i.amount for i in receipts.data] == [2500] and receipts.data[0].paid_at is not None
    pdf = call("invoices.invoice_pdf").sync(client=client, invoice_id=receipts.data[0].id)
    assert pdf.payload.read().startswith(b"%PDF")
