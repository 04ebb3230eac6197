"""Exactly-once credit under concurrency: the confirm endpoint and the webhook race over
real HTTP (a threaded server), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from functools import partial

import pytest

from extensions import db
from models import LedgerEntry
from services.ledger import entries as ledger
from tests.conftest import WEBHOOK_SECRET, write_plans
from tests.support.payments import pay
from tests.support.stripe_events import event_payload, signature_header
from tests.support.threads import at_once

pytestmark = pytest.mark.money

PATHS_PER_KIND = 6  # concurrent confirm calls and concurrent webhook deliveries per PaymentIntent


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_confirm_and_webhook_race_credits_each_payment_intent_once(
        app, live_server, customer, stripe_client, localstripe_url):
    amounts = [500, 1234, 2500, 9999]
    intents = []
    for amount in amounts:
        status, body = post(f"{live_server.url}/v1/billing/payment-intents",
                            json.dumps({"amount": amount}).encode(), customer.headers)
        assert status == 200, body
        assert pay(stripe_client, body["payment_intent_id"]) == "succeeded"
        intents.append(body["payment_intent_id"])

    jobs = []
    for pi in intents:
        confirm_body = json.dumps({"payment_intent_id": pi}).encode()
        event = event_payload(localstripe_url, "payment_intent.succeeded", pi)
        for _ in range(PATHS_PER_KIND):
            jobs.append((pi, "confirm", f"{live_server.url}/v1/billing/confirm-payment",
                         confirm_body, customer.headers))
            jobs.append((pi, "webhook", f"{live_server.url}/v1/billing/webhook", event,
                         {"Stripe-Signature": signature_header(event, WEBHOOK_SECRET)}))

    def run(pi, kind, url, body, headers):
        return (pi, kind, *post(url, body, headers))

    results = at_once([partial(run, *job) for job in jobs])

    assert len(results) == len(jobs)
    assert all(status == 200 for _, _, status, _ in results), [r for r in results if r[2] != 200]
    credits = Counter(
        pi for pi, kind, _, answer in results
        if (kind == "confirm" and answer["credited"]) or answer.get("detail") == "credited"
    )
    # localstripe's own delivery may also be the one that credited; then no racer did.
    assert all(credits[pi] <= 1 for pi in intents), credits

    with app.app_context():
        entries = db.session.query(LedgerEntry).filter_by(account_id=customer.account_id).all()
        assert sorted(e.source_id for e in entries) == sorted(intents)
        assert ledger.current_balance(customer.account_id) == sum(amounts)
        assert ledger.ledger_sum(customer.account_id) == sum(amounts)
        db.session.remove()


@pytest.fixture
def app_config(tmp_path):
    """Three count meters with limits (two added by staff in the test), and room to race."""
    return {"TALLY_CONFIG_FILE": write_plans(tmp_path / "plans.json", free={
        "apiCalls": 10**9, "toolCalls": 10**9, "zCalls": 10**9, "requestsPerMinute": 10**6})}


def test_gate_and_ingestion_on_meters_sharing_an_event_do_not_deadlock(
        app, live_server, customer):
    """Three limited count meters read `api_call`; gate calls and event batches for one
    account race. Every writer takes the counters in one order, so none waits on another
    in a cycle: no deadlock (a 500 after PostgreSQL's deadlock_timeout), nothing lost."""
    staff_key = json.loads(app.test_cli_runner().invoke(args=[
        "create-staff", "--email", "ops@tally.test", "--password", "staff-pass-123"]).output)["api_key"]
    client = app.test_client()
    for name in ("toolCalls", "zCalls"):
        assert client.post("/v1/meters", headers={"X-Api-Key": staff_key}, json={
            "name": name, "event_name": "api_call", "aggregation": "count"}).status_code == 201

    def gate(n: int) -> list[int]:
        return [post(f"{live_server.url}/v1/authorize", json.dumps({"id": f"g{n}-{i}"}).encode(),
                     customer.headers)[0] for i in range(15)]

    def batch(n: int) -> list[int]:
        body = json.dumps({"events": [{"id": f"b{n}-{i}", "event_name": "api_call"}
                                      for i in range(50)]}).encode()
        return [post(f"{live_server.url}/v1/events", body, customer.headers)[0]]

    statuses = [s for part in at_once([partial(gate, n) for n in range(4)]
                                      + [partial(batch, n) for n in range(4)]) for s in part]
    assert statuses == [200] * len(statuses)
    usage = client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"]
    assert usage["apiCalls"] == usage["toolCalls"] == usage["zCalls"] == 4 * 15 + 4 * 50
