"""`Tally.ingest` against a real Tally: background batches, retries, flush on exit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest
from client_support import fault_proxy, recording_client, unavailable, used
from tally_client import BufferFull, Event, EventsRejected, Tally, TallyError, TallyUnavailable

from tests.support.localstripe import free_port


def events_sent(sent: list[httpx.Request]) -> list[list[str]]:
    """The event ids of each `POST /v1/events` an event hook saw."""
    return [[e["id"] for e in json.loads(r.content)["events"]] for r in sent
            if r.url.path == "/v1/events"]


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_events_leave_in_batches_and_count(live_server, make_customer):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    http, sent = recording_client()
    with Tally(live_server.url, alice.api_key, http_client=http, batch_size=100,
               flush_interval=3600) as tally:
        tally.ingest([Event("api_call") for _ in range(250)])
        tally.ingest([Event("llm_completion", {"tokens": 812}, id="evt-bob-1")], api_key=bob.api_key)
        assert tally.flush(timeout=30)
    batches = events_sent(sent)
    assert sorted(len(b) for b in batches) == [1, 50, 100, 100]
    assert len({i for b in batches for i in b}) == 251  # every event has its own id
    assert used(live_server.url, alice.api_key) == 250
    assert used(live_server.url, bob.api_key, "llmTokens") == 812
    assert used(live_server.url, bob.api_key) == 0


def test_a_partial_batch_leaves_after_the_flush_interval(live_server, customer):
    with Tally(live_server.url, customer.api_key, flush_interval=0.2) as tally:
        tally.ingest([Event("api_call") for _ in range(3)])
        assert wait_until(lambda: used(live_server.url, customer.api_key) == 3)


def test_the_interpreter_exit_flushes(live_server, customer):
    script = ("import sys\nfrom tally_client import Event, Tally\n"
              "tally = Tally(sys.argv[1], sys.argv[2], flush_interval=3600)\n"
              "tally.ingest([Event('api_call') for _ in range(30)])\n")  # and no close()
    done = subprocess.run([sys.executable, "-c", script, live_server.url, customer.api_key],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert used(live_server.url, customer.api_key) == 30


def test_an_exit_while_tally_is_away_says_what_was_lost(customer):
    script = ("import sys\nfrom tally_client import Event, Tally\n"
              "tally = Tally(sys.argv[1], sys.argv[2], flush_interval=3600, close_timeout=0.5)\n"
              "tally.ingest([Event('api_call') for _ in range(20)])\n")
    done = subprocess.run([sys.executable, "-c", script, f"http://127.0.0.1:{free_port()}",
                           customer.api_key], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "20 usage events not recorded" in done.stderr
    assert customer.api_key not in done.stderr


def test_a_lost_answer_is_retried_and_counted_once(live_server, customer):
    http, sent = recording_client()
    with fault_proxy(live_server.port) as proxy, \
            Tally(proxy.url, customer.api_key, http_client=http) as tally:
        proxy.lose_answers = 1
        tally.ingest([Event("api_call") for _ in range(10)])
        assert tally.flush(timeout=30)
    first, again = events_sent(sent)
    assert first == again  # the same batch, the same ids
    assert used(live_server.url, customer.api_key) == 10


def test_a_503_retry_after_is_waited_for(live_server, customer):
    http, sent = recording_client()
    with fault_proxy(live_server.port) as proxy:
        proxy.canned.append(unavailable(retry_after=1))
        with Tally(proxy.url, customer.api_key, http_client=http) as tally:
            tally.ingest([Event("api_call")])
            assert tally.flush(timeout=30)
    assert len(events_sent(sent)) == 2
    assert used(live_server.url, customer.api_key) == 1


def test_refused_events_go_to_on_dropped_and_the_rest_count(live_server, customer):
    dropped: list[tuple[list[dict], TallyError]] = []
    old = datetime.now(UTC) - timedelta(days=40)
    with Tally(live_server.url, customer.api_key,
               on_dropped=lambda events, error: dropped.append((events, error))) as tally:
        tally.ingest([Event("api_call", id="fresh"), Event("api_call", id="stale", timestamp=old)])
        assert tally.flush(timeout=30)
    [(events, error)] = dropped
    assert [e["id"] for e in events] == ["stale"]
    assert isinstance(error, EventsRejected) and error.rejected[0].code == "timestamp_too_old"
    assert used(live_server.url, customer.api_key) == 1


def test_a_full_buffer_refuses_more_and_close_reports_the_rest(customer):
    dropped: list[tuple[list[dict], TallyError]] = []
    with Tally(f"http://127.0.0.1:{free_port()}", customer.api_key, batch_size=10, max_buffer=10,
               buffer_timeout=1, close_timeout=0.2,
               on_dropped=lambda events, error: dropped.append((events, error))) as tally:
        tally.ingest([Event("api_call") for _ in range(10)])  # taken by the sender, retrying
        tally.ingest([Event("api_call") for _ in range(10)])  # waits in the buffer
        with pytest.raises(BufferFull):
            tally.ingest([Event("api_call")])
    assert sum(len(events) for events, _ in dropped) == 20
    assert all(isinstance(error, TallyUnavailable) for _, error in dropped)
    with pytest.raises(RuntimeError, match="closed"):
        tally.ingest([Event("api_call")])
