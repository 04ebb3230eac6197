"""Auto-recharge under faults: accounts spend their credit through POST /v1/authorize (a
priced meter) on 4 gunicorn workers, each crossing its threshold again and again, while
workers are SIGKILLed and the app's database connections dropped; localstripe sends its
own `payment_intent.succeeded` webhooks to the server, racing each recharge's own credit.

Afterwards (once the outbox is drained): every recharge charged at Stripe is credited
exactly once, no attempt made two charges, no account ever had two attempts in flight,
every ledger equals its cached balance, and nothing is left charging.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import func, select

from extensions import db
from interfaces import jobs
from models import Account, AutoRecharge, Customer, LedgerEntry, RechargeAttempt
from models.base import utcnow
from services.ledger import entries as ledger
from tests.conftest import WEBHOOK_SECRET
from tests.support.chaos import Faults, Traffic, scaled, send_with_retries, write_figures
from tests.support.localstripe import register_webhook
from tests.support.servers import gunicorn_server
from tests.support.staff import make_staff

pytestmark = pytest.mark.chaos

ACCOUNTS = scaled(6)
CALLS = 240  # per account (the scale multiplies the accounts)
CLIENTS = 24
WORKERS = 4
PRICE = 20  # minor units per call
CREDIT, THRESHOLD, RECHARGE = 2500, 2000, 2000
FAULT_EVERY = 60  # calls


def call(url: str, path: str, body: dict, headers: dict[str, str], traffic: Traffic) -> tuple[int, dict]:
    reply = send_with_retries("POST", url + path, json.dumps(body).encode(), headers,
                              traffic=traffic)
    return reply.status, reply.body


def test_recharges_charge_once_and_credit_once_through_faults(
        app, backend, deployment, make_customer, stripe_client, localstripe_url):
    staff = make_staff(app)
    customers = [make_customer(f"Recharge{i}") for i in range(ACCOUNTS)]
    traffic = Traffic()
    in_flight: list[int] = []
    with gunicorn_server(deployment.env, workers=WORKERS) as server:
        register_webhook(localstripe_url, server.url + "/v1/billing/webhook", WEBHOOK_SECRET)
        plan = call(server.url, "/v1/price-plans", {
            "name": "Per call", "currency": "usd",
            "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": PRICE}]},
            staff.headers, traffic)[1]
        for who in customers:
            for path, body, headers in (
                    (f"/v1/accounts/{who.account_id}/price-plan", {"price_plan_id": plan["id"]},
                     staff.headers),
                    (f"/v1/accounts/{who.account_id}/credits",
                     {"amount": CREDIT, "reason": "chaos: auto-recharge"}, staff.headers),
                    ("/v1/payment-methods", {"payment_method_id": "pm_card_visa"}, who.headers),
                    ("/v1/billing/auto-recharge", {"enabled": True, "threshold": THRESHOLD,
                                                   "method": "fixed", "amount": RECHARGE},
                     who.headers)):
                status, answer = call(server.url, path, body, headers, traffic)
                assert status in (200, 201), (path, status, answer)

        done = threading.Event()

        def watch() -> None:
            """The most attempts in flight (claimed, not finished) any account had at once."""
            with psycopg.connect(deployment.database_url, autocommit=True) as conn:
                while not done.is_set():
                    in_flight.append(conn.execute(
                        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM "
                        "recharge_attempts WHERE outcome = 'pending' GROUP BY account_id) AS a"
                    ).fetchone()[0])
                    done.wait(0.02)

        def spend(n: int) -> int:
            who = customers[n % ACCOUNTS]
            return call(server.url, "/v1/authorize", {"id": f"chaos-{n}"}, who.headers, traffic)[0]

        faults = Faults(server, deployment.database_url, deployment.application_name)
        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = []
            for n in range(ACCOUNTS * CALLS):
                futures.append(pool.submit(spend, n))
                if n % FAULT_EVERY == FAULT_EVERY - 1:
                    pool.submit(faults.inject, n // FAULT_EVERY)
            statuses = Counter(f.result() for f in futures)
        done.set()
        watcher.join()
        server_log = server.log()

    # What a killed worker had claimed waits for its lease: deliver it now, as later.
    with app.app_context():
        later = utcnow() + timedelta(hours=7)
        while jobs.deliver_outbox(now=later):
            pass
        db.session.remove()

    assert set(statuses) <= {200, 402}, (statuses, server_log[-3000:])
    with app.app_context():
        stripe_customers = dict(db.session.execute(select(
            Customer.stripe_customer_id, Account.id).join(Account, Account.customer_id == Customer.id)
            .where(Account.id.in_([c.account_id for c in customers]))).all())
        charged = [pi for pi in stripe_client.v1.payment_intents.list(
            params={"limit": 100}).auto_paging_iter()
            if pi.customer in stripe_customers
            and pi.to_dict().get("metadata", {}).get("purpose") == "auto_recharge"]
        succeeded = {pi.id: pi.amount for pi in charged if pi.status == "succeeded"}
        credits = Counter(db.session.scalars(select(LedgerEntry.source_id).where(
            LedgerEntry.kind == "topup",
            LedgerEntry.account_id.in_(list(stripe_customers.values())))))
        attempts = list(db.session.scalars(select(RechargeAttempt)))
        by_attempt = Counter(a.payment_intent_id for a in attempts if a.payment_intent_id)
        assert sorted(credits) == sorted(succeeded)  # zero missed credits, zero credits unpaid
        assert max(credits.values()) == 1  # each credited once
        assert len(charged) == len(by_attempt) and max(by_attempt.values()) == 1  # one charge each
        assert max(in_flight) <= 1
        assert {a.outcome for a in attempts} == {"succeeded"}
        assert db.session.scalar(select(func.count()).select_from(AutoRecharge).where(
            AutoRecharge.status == "charging")) == 0
        for who in customers:
            assert ledger.current_balance(who.account_id) == ledger.ledger_sum(who.account_id)
        db.session.remove()

    write_figures("auto_recharge", {
        "accounts": ACCOUNTS, "gunicorn_workers": WORKERS, "clients": CLIENTS,
        "gate_calls": ACCOUNTS * CALLS, "allowed": statuses[200], "refused_402": statuses[402],
        "requests": traffic.counts["requests"], "retries": traffic.counts["retries"],
        **faults.counts, "recharges_charged": len(charged), "recharges_credited": len(credits),
        "double_charges": 0, "missed_credits": 0, "max_in_flight_per_account": max(in_flight),
    })
