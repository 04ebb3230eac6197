"""Restart safety: the whole server (master and every worker) is SIGKILLed while clients
send batches to POST /v1/events. After a restart every acknowledged event is there, no
batch is half there, and batches sent again (the ones never acknowledged, and some that
were) count once, because event ids are idempotency keys.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from extensions import db
from models import UsageEvent, UsageRollup
from tests.support.chaos import CONNECTION_FAILED, Traffic, scaled, send, write_figures
from tests.support.servers import Server, gunicorn_server

pytestmark = pytest.mark.chaos

BATCHES = scaled(120)
BATCH_SIZE = 200
CRASHES = 3
WORKERS = 4
CLIENTS = 4


def make_batch(n: int) -> list[dict]:
    """Half api_call, half llm_completion with n-dependent tokens."""
    return [{"id": f"evt-{n}-{j}", "event_name": "api_call", "properties": {"path": "/x"}}
            if j % 2 else
            {"id": f"evt-{n}-{j}", "event_name": "llm_completion", "properties": {"tokens": n + j}}
            for j in range(BATCH_SIZE)]


def stored_ids(app) -> set[str]:
    """Every event id stored (one account; all of them, so no IN list of 100,000 ids)."""
    with app.app_context():
        found = set(db.session.scalars(select(UsageEvent.event_id)))
        db.session.remove()
    return found


def send_phase(server: Server, todo: list[int], bodies: dict[int, bytes], headers: dict[str, str],
               traffic: Traffic, crash_after: int | None) -> tuple[set[int], set[int]]:
    """Send each batch once from CLIENTS threads; with `crash_after`, SIGKILL the whole
    server once that many batches are acknowledged (others are in flight then).
    Returns (acknowledged, not acknowledged)."""
    acked: set[int] = set()
    unacked: set[int] = set()
    crash_now = threading.Event()
    lock = threading.Lock()

    def send_batch(n: int) -> None:
        status, answer = send("POST", server.url + "/v1/events", bodies[n], headers)
        traffic.add(requests=1, connection_failures=int(status == CONNECTION_FAILED))
        with lock:
            if status == 200:
                assert answer["rejected"] == []
                assert answer["accepted"] + answer["duplicates"] == BATCH_SIZE
                acked.add(n)
                if crash_after is not None and len(acked) >= crash_after:
                    crash_now.set()
            else:
                assert status in (CONNECTION_FAILED, 502, 503), (status, answer)
                unacked.add(n)

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(send_batch, n) for n in todo]
        if crash_after is not None:
            while not crash_now.wait(0.05) and not all(f.done() for f in futures):
                pass
            server.crash()
        for f in futures:
            f.result()
    return acked, unacked


def test_acknowledged_events_survive_a_crash_and_resent_batches_count_once(
        app, backend, deployment, customer):
    batches = {n: make_batch(n) for n in range(BATCHES)}
    bodies = {n: json.dumps({"events": events}).encode() for n, events in batches.items()}
    traffic = Traffic()
    acked: set[int] = set()
    unacked: set[int] = set()
    resent_acked = stored_unacked = 0  # stored_unacked: committed, but the crash beat the answer
    partial: list[int] = []
    fresh = deque(range(BATCHES))
    chunk = BATCHES // (CRASHES + 1) + 1

    for phase in range(CRASHES + 1):
        # What this phase sends: batches never acknowledged, fresh ones, and a few that were
        # acknowledged already (a client unsure whether its answer got through).
        replays = sorted(acked)[:: max(1, len(acked) // 5)][:5]
        todo = sorted(unacked) + [fresh.popleft() for _ in range(min(chunk, len(fresh)))] + replays
        resent_acked += len(replays)
        crash_after = len(todo) // 2 if phase < CRASHES else None
        with gunicorn_server(deployment.env, workers=WORKERS) as server:
            acked_now, unacked = send_phase(server, todo, bodies, customer.headers, traffic,
                                            crash_after)
        acked |= acked_now
        # After the crash: everything acknowledged is stored, and no batch is half stored.
        stored = stored_ids(app)
        assert {e["id"] for n in acked for e in batches[n]} <= stored
        for n in unacked:
            found = sum(e["id"] in stored for e in batches[n])
            if found not in (0, BATCH_SIZE):
                partial.append(n)
            stored_unacked += found == BATCH_SIZE
    assert partial == []
    assert acked == set(range(BATCHES)) and not unacked

    events = [e for n in range(BATCHES) for e in batches[n]]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UsageEvent)) == len(events)
        # Pre-aggregates moved once per event, never for a batch sent again.
        assert db.session.scalar(select(func.sum(UsageRollup.events))) == len(events)
        db.session.remove()
    usage = app.test_client().get("/v1/billing/usage", headers=customer.headers).get_json()
    assert usage["usage"]["apiCalls"] == sum(e["event_name"] == "api_call" for e in events)
    assert usage["usage"]["llmTokens"] == sum(e["properties"].get("tokens", 0) for e in events)

    write_figures("restart_safety", {
        "batches": BATCHES, "events": len(events), "server_crashes": CRASHES,
        "gunicorn_workers": WORKERS, **traffic.counts,
        "unacknowledged_batches_found_stored": stored_unacked,
        "acknowledged_batches_resent": resent_acked, "half_stored_batches": len(partial),
        "acknowledged_events_lost": 0, "events_counted_twice": 0,
    })
