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
from services import ledger
from tests.conftest import WEBHOOK_SECRET
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
