"""`Tally.authorize` against a real Tally: answers, refusals, retries and the policy."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from client_support import API_CALLS, fault_proxy, recording_client, request_ids, unavailable, used
from tally_client import (
    Decision,
    InvalidRequest,
    RateLimited,
    Retries,
    Tally,
    TallyUnavailable,
    Unauthorized,
    Usage,
    UsageLimitExceeded,
)

from extensions import db
from tests.support.localstripe import free_port
from tests.support.servers import base_env, gunicorn_server


def test_allowed_calls_are_counted_once_per_id(live_server, customer):
    with Tally(live_server.url, customer.api_key) as tally:
        first = tally.authorize()
        assert first == Decision(allowed=True, id=first.id, account_id=customer.account_id,
                                 tier="free", usage=Usage(1, API_CALLS), remaining=API_CALLS - 1)
        assert first.decided_by == "tally" and first.id.startswith("req_")
        again = tally.authorize(id=first.id)  # the same request, sent again
        assert again.duplicate and again.usage == Usage(1, API_CALLS)
        tally.authorize("api_call", 2, id="req-42")
    assert used(live_server.url, customer.api_key) == 3


def test_the_key_can_be_given_per_call(live_server, make_customer):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    with Tally(live_server.url) as tally:  # a middleware's client: the caller brings the key
        assert tally.authorize(api_key=alice.api_key).account_id == alice.account_id
        assert tally.authorize(api_key=bob.api_key).account_id == bob.account_id
        with pytest.raises(ValueError, match="No API key"):
            tally.authorize()


def test_over_the_limit_is_402_with_tallys_body(live_server, customer):
    with Tally(live_server.url, customer.api_key) as tally:
        for _ in range(API_CALLS):
            tally.authorize()
        with pytest.raises(UsageLimitExceeded) as refused:
            tally.authorize()
    error = refused.value
    assert error.status == 402 and error.code == "usage_limit_exceeded"
    assert error.usage == Usage(API_CALLS, API_CALLS)
    assert error.upgrade_url and error.upgrade_url.endswith("/plans")
    assert error.body["message"] == error.message == "API call limit reached for current period"
    assert used(live_server.url, customer.api_key) == API_CALLS  # a refused call records nothing


def test_over_the_rate_is_429_with_retry_after(app, live_server, customer):
    app.extensions["tally_plans"]["free"].limits["requestsPerMinute"] = 2
    with Tally(live_server.url, customer.api_key) as tally:
        tally.authorize()
        tally.authorize()
        with pytest.raises(RateLimited) as limited:
            tally.authorize()
    assert limited.value.status == 429 and limited.value.code == "rate_limited"
    assert limited.value.retry_after is not None and limited.value.retry_after > 0
    assert limited.value.headers["X-RateLimit-Limit"] == "2"


def test_a_bad_key_and_a_bad_event_are_typed_errors(live_server, customer):
    with Tally(live_server.url, "tly_" + "x" * 40) as tally:
        with pytest.raises(Unauthorized) as unknown:
            tally.authorize()
        assert unknown.value.code == "invalid_api_key"
        with pytest.raises(InvalidRequest) as typo:
            tally.authorize("api_calls", api_key=customer.api_key)
    assert typo.value.status == 400 and typo.value.code == "unknown_event_name"
    assert typo.value.param == "event_name"


def test_calls_share_one_kept_alive_connection(app, customer, tmp_path):
    """Against Tally under gunicorn's threaded worker, which keeps connections alive (the
    test server closes each one): four calls, one connection."""
    with app.app_context():
        database_url = db.engine.url.render_as_string(hide_password=False)
    env = base_env(database_url, tmp_path, TALLY_CONFIG_FILE=app.config["TALLY_CONFIG_FILE"])
    with gunicorn_server(env, args=["--worker-class", "gthread", "--threads", "2",
                                    "--keep-alive", "30"]) as server, \
            fault_proxy(server.port) as proxy, Tally(proxy.url, customer.api_key) as tally:
        for _ in range(4):
            tally.authorize()
        assert proxy.connections == 1
        assert used(server.url, customer.api_key) == 4


@pytest.mark.parametrize("fault", ["lost", "late"])
def test_a_retry_reuses_the_id_so_the_call_counts_once(live_server, customer, fault):
    """Tally served the call but its answer never came (lost, or past the timeout): the
    retry sends the same id, Tally answers it as a duplicate, and it counts once."""
    http, sent = recording_client()
    with fault_proxy(live_server.port) as proxy, \
            Tally(proxy.url, customer.api_key, http_client=http, timeout=0.5) as tally:
        if fault == "lost":
            proxy.lose_answers = 1
        else:
            proxy.hold_answers = 1
        decision = tally.authorize()
    assert decision.allowed and decision.duplicate and decision.decided_by == "tally"
    assert request_ids(sent) == [decision.id, decision.id]
    assert used(live_server.url, customer.api_key) == 1


def test_a_503_with_retry_after_is_waited_for_when_allowed(live_server, customer):
    http, sent = recording_client()
    with fault_proxy(live_server.port) as proxy:
        proxy.canned.append(unavailable(retry_after=1))
        with Tally(proxy.url, customer.api_key, http_client=http,
                   retries=Retries(max_wait=5)) as tally:
            decision = tally.authorize()
        assert decision.decided_by == "tally" and len(sent) == 2
        # By default a call does not wait for Tally: a 503 asking for time is "unreachable".
        proxy.canned.append(unavailable(retry_after=1))
        with Tally(proxy.url, customer.api_key, on_unreachable="closed") as tally, \
                pytest.raises(TallyUnavailable) as unreachable:
            tally.authorize()
    assert unreachable.value.status == 503 and unreachable.value.code == "overloaded"
    assert used(live_server.url, customer.api_key) == 1


def test_fail_closed_refuses_and_says_so(customer):
    closed_port = f"http://127.0.0.1:{free_port()}"
    with Tally(closed_port, customer.api_key, on_unreachable="closed", close_timeout=0.2) as tally:
        with pytest.raises(TallyUnavailable) as refused:
            tally.authorize(id="req-1")
        decision = refused.value.decision
        assert decision is not None and not decision.allowed
        assert decision.decided_by == "fail_closed" and decision.id == "req-1"
        assert isinstance(refused.value.__cause__, httpx.ConnectError)
        # The policy can be chosen per call.
        served = tally.authorize(on_unreachable="open")
        assert served.allowed and served.decided_by == "fail_open"
        assert isinstance(served.error, TallyUnavailable)


@pytest.mark.parametrize("fault", ["refused", "lost"])
def test_fail_open_serves_and_the_call_is_counted_once_later(live_server, customer, fault):
    """Unreachable, the call is served and its event queued under the same id: counted once
    when Tally is back, whether or not one of the tries got through."""
    with fault_proxy(live_server.port) as proxy, Tally(proxy.url, customer.api_key) as tally:
        if fault == "refused":
            proxy.refuse = True
        else:
            proxy.lose_answers = 3  # every try reaches Tally; no answer comes back
        decision = tally.authorize()
        assert decision.allowed and decision.decided_by == "fail_open"
        proxy.refuse = False
        assert tally.flush(timeout=30)
    assert used(live_server.url, customer.api_key) == 1
