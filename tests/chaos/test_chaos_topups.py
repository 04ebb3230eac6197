"""Exactly-once credit under load and faults: 200 PaymentIntents, each confirmed through
the endpoint and delivered by webhook at the same time, then both replayed, in shuffled
order, against 4 gunicorn workers on PostgreSQL while workers are SIGKILLed mid-request
and the app's database connections are terminated. Clients retry as Stripe does.

Nothing may be credited twice or missed, and every account's cached balance must equal
the sum of its ledger.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Account, Invoice, LedgerEntry, TopUp, WebhookEvent
from models.ledger import KIND_TOPUP
from services.ledger import entries as ledger
from tests.conftest import WEBHOOK_SECRET
from tests.support.chaos import Faults, Traffic, scaled, send_with_retries, write_figures
from tests.support.localstripe import register_webhook
from tests.support.payments import pay
from tests.support.servers import gunicorn_server
from tests.support.stripe_events import event_payloads, signature_header

pytestmark = pytest.mark.chaos

INTENTS = scaled(200)
ACCOUNTS = 8
WORKERS = 4
CLIENTS = 16
FAULT_EVERY = 20  # one fault per this many requests sent


def test_every_payment_intent_is_credited_exactly_once_through_faults(
        app, backend, deployment, make_customer, stripe_client, localstripe_url):
    rng = random.Random(2024)
    customers = [make_customer(f"Chaos{i}") for i in range(ACCOUNTS)]
    traffic = Traffic()
    with gunicorn_server(deployment.env, workers=WORKERS) as server, \
            ThreadPoolExecutor(CLIENTS) as pool:
        webhook_url = server.url + "/v1/billing/webhook"
        register_webhook(localstripe_url, webhook_url, WEBHOOK_SECRET)  # localstripe delivers too

        def start(i: int) -> tuple[str, str, int]:
            who, amount = customers[i % ACCOUNTS], 500 + (i * 7919) % 99_500
            reply = send_with_retries(
                "POST", server.url + "/v1/billing/payment-intents",
                json.dumps({"amount": amount}).encode(),
                {**who.headers, "Idempotency-Key": f"chaos-{i}"}, traffic=traffic)
            assert reply.status == 200, reply
            intent = reply.body["payment_intent_id"]
            assert pay(stripe_client, intent) == "succeeded"
            return intent, who.account_id, amount

        intents = list(pool.map(start, range(INTENTS)))
        events = event_payloads(localstripe_url, "payment_intent.succeeded")
        key_of = {c.account_id: c.headers for c in customers}

        def confirm(intent: str, account_id: str) -> tuple[str, str, Any]:
            reply = send_with_retries("POST", server.url + "/v1/billing/confirm-payment",
                                      json.dumps({"payment_intent_id": intent}).encode(),
                                      key_of[account_id], traffic=traffic)
            return "confirm", intent, reply

        def deliver(intent: str) -> tuple[str, str, Any]:
            event = events[intent]
            reply = send_with_retries(
                "POST", webhook_url, event,
                lambda: {"Stripe-Signature": signature_header(event, WEBHOOK_SECRET)},
                traffic=traffic)
            return "webhook", intent, reply

        faults = Faults(server, deployment.database_url, deployment.application_name)
        replies: list[tuple[str, str, Any]] = []
        # Round 1: two confirms and two deliveries of each; round 2: one replay of each.
        for copies in (2, 1):
            jobs: list[tuple[Any, ...]] = []
            for intent, account_id, _ in intents:
                jobs += [(confirm, intent, account_id)] * copies + [(deliver, intent)] * copies
            rng.shuffle(jobs)
            futures = []
            for n, (call, *args) in enumerate(jobs):
                futures.append(pool.submit(call, *args))
                if n % FAULT_EVERY == FAULT_EVERY - 1:
                    futures.append(pool.submit(faults.inject, n // FAULT_EVERY))
            replies += [r for r in (f.result() for f in futures) if r is not None]
        server_log = server.log()

    failed = [r for r in replies if r[2].status != 200]
    assert not failed, (failed[:5], server_log[-5000:])
    credited_answers = Counter(
        intent for kind, intent, reply in replies
        if (kind == "confirm" and reply.body["credited"]) or reply.body.get("detail") == "credited")
    assert max(credited_answers.values(), default=0) <= 1

    expected = {intent: amount for intent, _, amount in intents}
    with app.app_context():
        entries = db.session.execute(
            select(LedgerEntry.source_id, func.count(), func.sum(LedgerEntry.amount))
            .where(LedgerEntry.kind == KIND_TOPUP).group_by(LedgerEntry.source_id)).all()
        credited = {source_id: (count, amount) for source_id, count, amount in entries}
        double = sorted(i for i, (count, _) in credited.items() if count > 1)
        missed = sorted(set(expected) - set(credited))
        assert double == [] and missed == []
        assert {i: amount for i, (_, amount) in credited.items()} == expected
        for who in customers:
            assert ledger.current_balance(who.account_id) == ledger.ledger_sum(who.account_id)
        assert sum(db.session.scalars(select(Account.balance))) == sum(expected.values())
        receipts = Counter(db.session.scalars(
            select(Invoice.source_id).where(Invoice.source_id.in_(list(expected)))))
        assert receipts == Counter(expected.keys())  # one receipt each, even after a crash mid-way
        assert db.session.scalar(select(func.count()).select_from(TopUp).where(
            TopUp.credited_at.is_(None))) == 0
        unfinished = db.session.scalar(select(func.count()).select_from(WebhookEvent).where(
            (WebhookEvent.processed_at.is_(None)) | WebhookEvent.last_error.is_not(None)))
        assert unfinished == 0
        db.session.remove()

    assert faults.counts["workers_killed"] > 0 and faults.counts["database_drops"] > 0
    write_figures("exactly_once_topups", {
        "payment_intents": INTENTS, "accounts": ACCOUNTS, "gunicorn_workers": WORKERS,
        "amount_total": sum(expected.values()), **traffic.counts, **faults.counts,
        "double_credits": len(double), "missed_credits": len(missed),
        "ledger_equals_balance": True,
    })
