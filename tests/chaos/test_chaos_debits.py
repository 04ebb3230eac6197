"""Concurrent debits: 50 clients spend one account's prepaid credit through
POST /v1/authorize (a priced meter) on 4 gunicorn workers until it runs out. The credit
available never goes below zero, every refusal is a 402, exactly as many calls are allowed
as the credit pays for, and what was debited equals the usage recorded.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import func, select

from extensions import db
from models import Account, UsageCounter, UsageEvent
from models.pricing import UsageCharge
from services.ledger import entries as ledger
from tests.support.chaos import scaled, send, write_figures
from tests.support.servers import gunicorn_server
from tests.support.staff import make_staff

pytestmark = pytest.mark.chaos

CLIENTS = 50
WORKERS = 4
PRICE = 7  # minor units per API call
CREDIT = scaled(10_000)


def staff_call(url: str, path: str, body: dict, headers: dict[str, str]) -> dict:
    status, answer = send("POST", url + path, json.dumps(body).encode(), headers)
    assert status in (200, 201), (path, status, answer)
    return answer


def test_fifty_clients_spend_one_credit_never_below_zero(app, backend, deployment, customer):
    staff = make_staff(app)
    lowest: list[int] = []
    with gunicorn_server(deployment.env, workers=WORKERS) as server:
        plan = staff_call(server.url, "/v1/price-plans", {
            "name": "Per call", "currency": "usd",
            "charges": [{"meter": "apiCalls", "model": "per_unit", "unit_amount": PRICE}]},
            staff.headers)
        staff_call(server.url, f"/v1/accounts/{customer.account_id}/price-plan",
                   {"price_plan_id": plan["id"]}, staff.headers)
        staff_call(server.url, f"/v1/accounts/{customer.account_id}/credits",
                   {"amount": CREDIT, "reason": "chaos: concurrent debits"}, staff.headers)

        done = threading.Event()

        def watch() -> None:
            """Read the credit available as the clients spend it."""
            with psycopg.connect(deployment.database_url, autocommit=True) as conn:
                while not done.is_set():
                    lowest.append(conn.execute("SELECT balance - pending_usage FROM accounts "
                                               "WHERE id = %s", (customer.account_id,)).fetchone()[0])
                    done.wait(0.01)

        def spend(_: int) -> Counter:
            seen: Counter = Counter()
            while True:
                status, answer = send("POST", server.url + "/v1/authorize", b"", customer.headers)
                seen[status] += 1
                if status != 200:
                    assert status == 402, (status, answer)
                    assert answer["code"] == "usage_limit_exceeded" and "credit" in answer["message"]
                    return seen

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = sum(pool.map(spend, range(CLIENTS)), Counter())
        done.set()
        watcher.join()

    allowed = answers[200]
    assert set(answers) == {200, 402} and answers[402] == CLIENTS
    assert allowed == CREDIT // PRICE  # every cent that could be spent was, and no more
    assert min(lowest) >= 0
    with app.app_context():
        account = db.session.get(Account, customer.account_id)
        assert account.available_balance == CREDIT - allowed * PRICE
        assert account.available_balance >= 0
        assert ledger.current_balance(account.id) == ledger.ledger_sum(account.id) == CREDIT
        # Debits equal recorded usage: calls metered, and their price accrued, once each.
        events = db.session.scalar(select(func.count()).select_from(UsageEvent))
        counted = db.session.scalar(select(func.max(UsageCounter.value)).where(
            UsageCounter.account_id == account.id))
        charged = db.session.scalar(select(func.sum(UsageCharge.amount)).where(
            UsageCharge.account_id == account.id))
        assert events == counted == allowed
        assert charged == account.pending_usage == allowed * PRICE
        db.session.remove()

    write_figures("concurrent_debits", {
        "clients": CLIENTS, "gunicorn_workers": WORKERS, "credit": CREDIT, "price_per_call": PRICE,
        "requests": sum(answers.values()), "allowed": allowed, "refused_402": answers[402],
        "lowest_available_credit_seen": min(lowest), "credit_left": CREDIT - allowed * PRICE,
        "overdrawn": 0, "debits_not_matching_usage": 0,
    })
