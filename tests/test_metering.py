"""Usage events, the gate, plan limits (402), rate limits (429) and usage views."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from extensions import db
from models import UsageEvent
from tests.conftest import csrf_token, login, write_plans
from tests.support.staff import make_staff

pytestmark = pytest.mark.money  # the gate moves counters under concurrency: PostgreSQL too

LIMITS = {"apiCalls": 5, "llmTokens": 1000, "storage": 4096, "requestsPerMinute": 40,
          "lifetimeApiCalls": None}


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def rate_storage(request, backend) -> str:
    """Where rate-limit windows live: memory on SQLite, and on PostgreSQL the Redis storage
    production uses (`tally+redis`: keys are cached, and the gate is served in front of
    Flask, views/api/gate_path.py); or what a test asks for (`redis` is limits' own)."""
    scheme = getattr(request, "param", "tally+redis" if backend == "postgresql" else "memory")
    if scheme == "memory":
        return "memory://"
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    return REDIS_URL.replace("redis", scheme, 1)


@pytest.fixture
def app_config(tmp_path, rate_storage):
    return {"TALLY_CONFIG_FILE": write_plans(
        tmp_path / "plans.json", free=LIMITS,
        pro={"apiCalls": 100000, "requestsPerMinute": 600}),
        "RATELIMIT_STORAGE_URI": rate_storage}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ingest(client, customer, events):
    return client.post("/v1/events", json={"events": events}, headers=customer.headers)


def usage(client, customer) -> dict:
    response = client.get("/v1/billing/usage", headers=customer.headers)
    assert response.status_code == 200
    return response.get_json()


def stored_events(app, customer) -> int:
    with app.app_context():
        count = db.session.query(UsageEvent).filter_by(account_id=customer.account_id).count()
        db.session.remove()
    return count


# Events ------------------------------------------------------------------------


def test_ids_are_counted_once_across_and_within_batches(client, customer):
    first = ingest(client, customer, [
        {"id": "a", "event_name": "llm_completion", "properties": {"tokens": 100}},
        {"id": "b", "event_name": "llm_completion", "properties": {"tokens": 10}},
        {"id": "a", "event_name": "llm_completion", "properties": {"tokens": 100}},
    ]).get_json()
    assert first == {"accepted": 2, "duplicates": 1, "rejected": []}
    second = ingest(client, customer, [
        {"id": "b", "event_name": "llm_completion", "properties": {"tokens": 10}},
        {"id": "c", "event_name": "llm_completion", "properties": {"tokens": 1}},
    ]).get_json()
    assert second == {"accepted": 1, "duplicates": 1, "rejected": []}
    single = client.post("/v1/events", headers=customer.headers, json={
        "id": "c", "event_name": "llm_completion", "properties": {"tokens": 1}}).get_json()
    assert single == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert usage(client, customer)["usage"]["llmTokens"] == 111


def test_clock_skew_is_rejected_per_event(client, customer):
    now = datetime.now(UTC)
    body = ingest(client, customer, [
        {"id": "old", "event_name": "api_call", "timestamp": iso(now - timedelta(days=36))},
        {"id": "ok-old", "event_name": "api_call", "timestamp": iso(now - timedelta(days=34))},
        {"id": "future", "event_name": "api_call", "timestamp": iso(now + timedelta(minutes=6))},
        {"id": "ok-future", "event_name": "api_call", "timestamp": iso(now + timedelta(minutes=4))},
        {"id": "now", "event_name": "api_call"},
    ]).get_json()
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert [(r["index"], r["id"], r["code"]) for r in body["rejected"]] == [
        (0, "old", "timestamp_too_old"), (2, "future", "timestamp_in_future")]
    assert all(r["message"] for r in body["rejected"])


@pytest.mark.parametrize("body, param", [
    ({"events": []}, "events"),
    ({"events": [{"id": str(i), "event_name": "api_call"} for i in range(1001)]}, "events"),
    ({"events": "nope"}, "events"),
    ({"events": [{"id": "x", "event_name": "api_call"}, 7]}, "events[1]"),
    ({"events": [{"id": "x", "event_name": "api_call"}, {"event_name": "api_call"}]}, "events[1].id"),
    ({"events": [{"id": "x", "event_name": ""}]}, "events[0].event_name"),
    ({"events": [{"id": "x", "event_name": "a", "timestamp": "yesterday"}]}, "events[0].timestamp"),
    ({"events": [{"id": "x", "event_name": "a", "properties": [1]}]}, "events[0].properties"),
    ({"event_name": "api_call"}, "id"),
])
def test_bad_shapes_are_400_and_store_nothing(app, client, customer, body, param):
    response = client.post("/v1/events", json=body, headers=customer.headers)
    assert response.status_code == 400
    assert response.get_json()["param"] == param
    assert stored_events(app, customer) == 0


def test_invalid_json_is_400(client, customer):
    response = client.post("/v1/events", data="{", headers={**customer.headers,
                                                             "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_json"


def test_unusable_properties_are_rejected_per_event(client, customer):
    body = ingest(client, customer, [
        {"id": "1", "event_name": "llm_completion", "properties": {"tokens": "many"}},
        {"id": "2", "event_name": "llm_completion", "properties": {}},
        {"id": "3", "event_name": "llm_completion", "properties": {"tokens": -1}},
        {"id": "4", "event_name": "llm_completion", "properties": {"tokens": 7}},
        # Past a quadrillion a value is a mistake; twice 2**62 once overflowed the counter.
        {"id": "5", "event_name": "llm_completion", "properties": {"tokens": 2**62}},
        {"id": "6", "event_name": "storage_usage", "properties": {"bytes": 10**15 + 1}},
    ]).get_json()
    assert body["accepted"] == 1
    assert [r["code"] for r in body["rejected"]] == [
        "invalid_property", "missing_property", "invalid_property", "invalid_property",
        "invalid_property"]
    assert body["rejected"][3]["message"] == (
        "properties.tokens must be a whole number from 0 to 1,000,000,000,000,000.")
    assert usage(client, customer)["usage"]["llmTokens"] == 7
    again = ingest(client, customer, [
        {"id": "7", "event_name": "llm_completion", "properties": {"tokens": 10**15}}]).get_json()
    assert again["accepted"] == 1


def test_each_aggregation(client, customer, app):
    staff = app.test_cli_runner().invoke(args=["create-staff", "--email", "ops@tally.test",
                                               "--password", "staff-pass-123"])
    staff_key = __import__("json").loads(staff.output)["api_key"]
    for name, aggregation, prop in (("peakRam", "max", "mb"), ("activeUsers", "unique_count", "user"),
                                    ("seats", "latest", "n"), ("jobs", "count", None)):
        created = client.post("/v1/meters", headers={"X-Api-Key": staff_key}, json={
            "name": name, "event_name": f"{name}_evt", "aggregation": aggregation,
            "property": prop, "unit": "u"})
        assert created.status_code == 201, created.get_json()
    # A customer key cannot add meters.
    assert client.post("/v1/meters", headers=customer.headers, json={
        "name": "x", "event_name": "x", "aggregation": "count"}).status_code == 403

    now = datetime.now(UTC)
    t = [iso(now - timedelta(minutes=m)) for m in (30, 20, 10, 5)]
    body = ingest(client, customer, [
        {"id": "m1", "event_name": "peakRam_evt", "timestamp": t[0], "properties": {"mb": 300}},
        {"id": "m2", "event_name": "peakRam_evt", "timestamp": t[1], "properties": {"mb": 900}},
        {"id": "m3", "event_name": "peakRam_evt", "timestamp": t[2], "properties": {"mb": 500}},
        {"id": "u1", "event_name": "activeUsers_evt", "properties": {"user": "ann"}},
        {"id": "u2", "event_name": "activeUsers_evt", "properties": {"user": "bob"}},
        {"id": "u3", "event_name": "activeUsers_evt", "properties": {"user": "ann"}},
        {"id": "s1", "event_name": "seats_evt", "timestamp": t[3], "properties": {"n": 4}},
        {"id": "s2", "event_name": "seats_evt", "timestamp": t[0], "properties": {"n": 9}},
        {"id": "j1", "event_name": "jobs_evt"},
        {"id": "j2", "event_name": "jobs_evt", "properties": {"quantity": 3}},
        {"id": "st", "event_name": "storage_usage", "timestamp": t[1], "properties": {"bytes": 10}},
        {"id": "st2", "event_name": "storage_usage", "timestamp": t[3], "properties": {"bytes": 20}},
    ]).get_json()
    assert body["accepted"] == 12, body
    values = usage(client, customer)["usage"]
    assert values["peakRam"] == 900  # max
    assert values["activeUsers"] == 2  # unique_count
    assert values["seats"] == 4  # latest by timestamp, not by arrival
    assert values["jobs"] == 4  # count, weighted by quantity
    assert values["storage"] == 20 and values["storageLimit"] == 4096
    assert values["peakRamLimit"] is None  # a custom meter without a plan limit
    series = client.get("/v1/meters/activeUsers/usage?granularity=day",
                        headers=customer.headers).get_json()
    assert sum(p["value"] for p in series["data"]) == 2
    meters = client.get("/v1/meters", headers=customer.headers).get_json()["data"]
    assert {"apiCalls", "llmTokens", "storage", "peakRam"} <= {m["name"] for m in meters}


# The gate and limits -------------------------------------------------------------


def authorize(client, customer, **body):
    return client.post("/v1/authorize", json=body or None, headers=customer.headers)


def test_gate_allows_until_the_limit_then_402_with_the_exact_body(app, client, customer):
    for n in range(1, 6):
        allowed = authorize(client, customer)
        assert allowed.status_code == 200
        assert allowed.get_json() == {"allowed": True, "account_id": customer.account_id,
                                      "tier": "free", "usage": {"current": n, "limit": 5},
                                      "remaining": 5 - n}
    before = stored_events(app, customer)
    refused = authorize(client, customer, id="req-6")
    assert refused.status_code == 402
    assert refused.get_json() == {
        "error": "Usage limit exceeded", "code": "usage_limit_exceeded",
        "message": "API call limit reached for current period",
        "usage": {"current": 5, "limit": 5}, "upgrade_url": "http://localhost/plans"}
    assert stored_events(app, customer) == before  # a refused call records nothing
    assert usage(client, customer)["usage"]["apiCalls"] == 5
    # Billing, key and account endpoints are never blocked by usage limits.
    for method, path in (("get", "/v1/billing"), ("get", "/v1/me"), ("get", "/v1/keys"),
                         ("get", "/v1/billing/balance")):
        assert getattr(client, method)(path, headers=customer.headers).status_code == 200
    billing = client.get("/v1/billing", headers=customer.headers).get_json()
    assert billing["calls_total"] == 5 and billing["call_limit"] is None and billing["over_limit"]
    assert client.post("/v1/billing/payment-intents", json={"amount": 1000},
                       headers=customer.headers).status_code == 200


def test_a_call_over_any_meters_limit_moves_no_counter(app, client, customer):
    """Two limited meters read `api_call`. When one is full, the call is a 402 naming it,
    and the other's counter (which the call may already have moved) is left as it was."""
    staff = make_staff(app)
    created = client.post("/v1/meters", headers=staff.headers, json={
        "name": "zCalls", "event_name": "api_call", "aggregation": "count"})
    assert created.status_code == 201
    app.extensions["tally_plans"]["free"].limits["zCalls"] = 2
    assert [authorize(client, customer).status_code for _ in range(3)] == [200, 200, 402]
    refused = authorize(client, customer)
    assert refused.status_code == 402
    assert refused.get_json()["usage"] == {"current": 2, "limit": 2}
    assert refused.get_json()["message"] == "zCalls limit reached for current period"
    counted = usage(client, customer)["usage"]
    assert counted["apiCalls"] == counted["zCalls"] == 2
    assert client.get("/v1/billing", headers=customer.headers).get_json()["calls_total"] == 2


def test_gate_is_idempotent_by_request_id(client, customer):
    first = authorize(client, customer, id="req-1").get_json()
    again = authorize(client, customer, id="req-1").get_json()
    assert first["usage"]["current"] == 1 and again["usage"]["current"] == 1
    assert again["duplicate"] is True


def test_gate_quantity_and_sum_meters(client, customer):
    assert authorize(client, customer, quantity=3).get_json()["usage"]["current"] == 3
    over = authorize(client, customer, quantity=3)
    assert over.status_code == 402 and over.get_json()["usage"] == {"current": 3, "limit": 5}
    # Room is left (2 of 5), just not 3: the message says so rather than "reached".
    assert over.get_json()["message"] == "API call limit would be exceeded by this call"
    tokens = authorize(client, customer, event_name="llm_completion", properties={"tokens": 600})
    assert tokens.get_json()["usage"] == {"current": 600, "limit": 1000}
    refused = authorize(client, customer, event_name="llm_completion", properties={"tokens": 600})
    assert refused.status_code == 402
    assert refused.get_json()["message"] == "LLM token limit would be exceeded by this call"
    for bad in ({"quantity": 0}, {"quantity": 1.5}, {"quantity": "2"}, {"properties": []}):
        assert authorize(client, customer, **bad).status_code == 400
    # An event no meter reads is refused, not waved through unmetered.
    typo = authorize(client, customer, event_name="api_calls")
    assert typo.status_code == 400 and typo.get_json()["code"] == "unknown_event_name"
    assert "Meters read: api_call, llm_completion, storage_usage." in typo.get_json()["message"]


@pytest.mark.parametrize("rate_storage", ["memory", "redis", "tally+redis"], indirect=True)
def test_rate_limit_429_with_headers(app, client, customer):
    app.extensions["tally_plans"]["free"].limits["requestsPerMinute"] = 3
    responses = [client.get("/v1/billing/balance", headers=customer.headers) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    for r in responses:
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert "X-RateLimit-Remaining" in r.headers and "X-RateLimit-Reset" in r.headers
    # Retry-After only where the client must wait: never on an answered request.
    assert ["Retry-After" in r.headers for r in responses] == [False, False, False, True]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    limited = responses[-1]
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["code"] == "rate_limited"
    # The gate shares the account's window; the public config endpoint does not count.
    assert client.post("/v1/authorize", headers=customer.headers).status_code == 429
    assert client.get("/v1/billing/config").status_code == 200


# Keys, periods, alerts -------------------------------------------------------------


def test_usage_keys_are_limited_to_the_gate_events_and_reads(client, customer):
    created = client.post("/v1/keys", json={"kind": "usage", "name": "prod"},
                          headers=customer.headers)
    assert created.status_code == 201
    usage_key = {"X-Api-Key": created.get_json()["api_key"]}
    assert client.post("/v1/authorize", headers=usage_key).status_code == 200
    assert client.post("/v1/events", json={"id": "e", "event_name": "api_call"},
                       headers=usage_key).status_code == 200
    for path in ("/v1/billing/balance", "/v1/billing/usage", "/v1/meters",
                 "/v1/meters/apiCalls/usage"):
        assert client.get(path, headers=usage_key).status_code == 200, path
    for method, path in (("get", "/v1/me"), ("get", "/v1/billing"), ("get", "/v1/keys"),
                         ("post", "/v1/keys/rotate"), ("post", "/v1/keys"),
                         ("post", "/v1/billing/payment-intents"),
                         ("post", "/v1/billing/confirm-payment"), ("post", "/v1/billing/settings")):
        refused = getattr(client, method)(path, headers=usage_key, json={})
        assert refused.status_code == 403 and refused.get_json()["code"] == "key_scope", path
    # Usage keys rotate and revoke like account keys (from an account key).
    key_id = created.get_json()["key"]["id"]
    rotated = client.post("/v1/keys/rotate", json={"key_id": key_id}, headers=customer.headers)
    assert client.post("/v1/authorize", headers=usage_key).status_code == 401
    new_usage_key = {"X-Api-Key": rotated.get_json()["api_key"]}
    assert client.post("/v1/authorize", headers=new_usage_key).status_code == 200
    new_id = rotated.get_json()["key"]["id"]
    assert client.post(f"/v1/keys/{new_id}/revoke", headers=customer.headers).status_code == 200
    assert client.post("/v1/authorize", headers=new_usage_key).status_code == 401


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_month_boundary_in_the_account_time_zone(client, customer, zone):
    settings = client.post("/v1/billing/settings", json={"time_zone": zone},
                           headers=customer.headers)
    assert settings.status_code == 200 and settings.get_json()["time_zone"] == zone
    tz = ZoneInfo(zone)
    first_of_month = datetime.now(tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_evening = first_of_month - timedelta(minutes=30)  # 23:30 local on the last day
    body = ingest(client, customer, [
        {"id": "late", "event_name": "api_call", "timestamp": last_evening.isoformat()},
        {"id": "early", "event_name": "api_call", "timestamp": first_of_month.isoformat()},
    ]).get_json()
    assert body["accepted"] == 2
    current = usage(client, customer)
    assert current["time_zone"] == zone
    assert current["period_start"] == first_of_month.astimezone(UTC).isoformat()
    assert current["usage"]["apiCalls"] == 1  # only "early"
    previous = client.get(
        f"/v1/meters/apiCalls/usage?granularity=day&from={iso(first_of_month - timedelta(days=2))}"
        f"&to={iso(first_of_month)}", headers=customer.headers).get_json()
    assert previous["data"][-1]["value"] == 1
    assert previous["data"][-1]["start"] == (first_of_month - timedelta(days=1)).astimezone(
        UTC).isoformat()


def test_changing_the_time_zone_keeps_the_months_usage_and_its_limits(app, client, customer):
    """A new time zone frames the month differently; its usage so far carries over, so a
    customer at the limit cannot reopen it by moving to another zone."""
    staff = make_staff(app)
    assert client.post("/v1/meters", headers=staff.headers, json={
        "name": "users", "event_name": "login", "aggregation": "unique_count",
        "property": "user_id"}).status_code == 201
    now = datetime.now(UTC)
    assert ingest(client, customer, [
        {"id": "t1", "event_name": "llm_completion", "properties": {"tokens": 300}},
        {"id": "s1", "event_name": "storage_usage", "properties": {"bytes": 2048}},
        {"id": "u1", "event_name": "login", "properties": {"user_id": "ann"}},
        {"id": "u2", "event_name": "login", "properties": {"user_id": "bob"}},
    ]).get_json()["accepted"] == 4
    assert [authorize(client, customer).status_code for _ in range(6)] == [200] * 5 + [402]
    for zone in ("Pacific/Kiritimati", "America/New_York", "UTC"):
        changed = client.post("/v1/billing/settings", json={"time_zone": zone},
                              headers=customer.headers)
        assert changed.status_code == 200
        body = usage(client, customer)
        assert body["time_zone"] == zone
        if periods_match(now, zone):  # the same calendar month in both zones
            assert {k: body["usage"][k] for k in ("apiCalls", "llmTokens", "storage", "users")} \
                == {"apiCalls": 5, "llmTokens": 300, "storage": 2048, "users": 2}
            refused = authorize(client, customer)
            assert refused.status_code == 402
            assert refused.get_json()["usage"] == {"current": 5, "limit": 5}
    # A user seen before the change is not counted again after it.
    assert ingest(client, customer, [{"id": "u3", "event_name": "login",
                                      "properties": {"user_id": "ann"}}]).get_json()["accepted"] == 1
    assert usage(client, customer)["usage"]["users"] == 2


def periods_match(now: datetime, zone: str) -> bool:
    return now.astimezone(ZoneInfo(zone)).month == now.month


def test_bad_settings_are_400_naming_the_field(client, customer):
    for body, param in (({"time_zone": "Mars/Olympus"}, "time_zone"), ({"spend_cap": -5}, "spend_cap"),
                        ({"spend_cap": 1.5}, "spend_cap"), ({"alert_thresholds": [0]}, "alert_thresholds"),
                        ({"alert_thresholds": "80"}, "alert_thresholds")):
        response = client.post("/v1/billing/settings", json=body, headers=customer.headers)
        assert response.status_code == 400 and response.get_json()["param"] == param
    assert client.get("/v1/billing/settings", headers=customer.headers).get_json() == {
        "time_zone": "UTC", "spend_cap": None, "currency": "usd", "alert_thresholds": [80, 100]}


def test_alerts_are_recorded_once_per_period_and_shown(app, client, customer):
    client.post("/v1/billing/settings", json={"alert_thresholds": [40, 100], "spend_cap": 5000},
                headers=customer.headers)
    for _ in range(5):
        authorize(client, customer)
    with app.app_context():
        from models import UsageAlert
        rows = db.session.query(UsageAlert).filter_by(account_id=customer.account_id).all()
        assert sorted(r.threshold for r in rows) == [40, 100]
        db.session.remove()
    login(client, customer)
    page = client.get("/").get_data(as_text=True)
    assert "API calls reached 100% of this period's limit" in page
    usage_page = client.get("/usage").get_data(as_text=True)
    assert "reached 100%" in usage_page and "America" not in usage_page


def test_usage_page_settings_form(client, customer):
    login(client, customer)
    page = client.get("/usage").get_data(as_text=True)
    token = csrf_token(page)
    bad = client.post("/usage/settings", data={"csrf_token": token, "time_zone": "Nowhere/Land",
                                               "alert_thresholds": "80, 100", "spend_cap": ""})
    assert bad.status_code == 400
    assert "Enter a time zone name such as Europe/Paris" in bad.get_data(as_text=True)
    # Every bad field is marked at once, in words for people (dollars, not minor units).
    for thresholds, cap, messages in (
            ("abc", "xyz", ["Use whole percentages from 1 to 1000", "Enter an amount such as 25.00."]),
            ("0, -10", "-5", ["Use whole percentages from 1 to 1000",
                              "The spend cap can&#39;t be below zero"]),
            ("80", "99999999999999999999", ["The spend cap can be at most $10,000,000,000.00."])):
        page = client.post("/usage/settings", data={
            "csrf_token": token, "time_zone": "Mars/Olympus", "alert_thresholds": thresholds,
            "spend_cap": cap}).get_data(as_text=True)
        for message in ["Enter a time zone name such as Europe/Paris", *messages]:
            assert message in page, (thresholds, cap, message)
        assert 'value="Mars/Olympus"' in page and f'value="{cap}"' in page  # nothing typed is lost
    good = client.post("/usage/settings", data={"csrf_token": token, "time_zone": "Europe/Paris",
                                                "alert_thresholds": "50, 90", "spend_cap": "25.00"})
    assert good.status_code == 303
    assert client.get("/v1/billing/settings", headers=customer.headers).get_json() == {
        "time_zone": "Europe/Paris", "spend_cap": 2500, "currency": "usd",
        "alert_thresholds": [50, 90]}
    fragment = client.get("/usage", headers={"HX-Request": "true", "HX-Target": "meters"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert 'data-testid="meter-apiCalls"' in fragment.get_data(as_text=True)
