"""POST /v1/authorize as production serves it: rate limits in Redis, keys cached per process,
and on PostgreSQL the gate answered in front of Flask (views/api/gate_path.py) whenever it
can. Whoever answers, a customer sees the same answers, headers and counts; what the path
cannot answer (a refused call, a new usage alert, a repeated id, a bad body, a staff member
viewing as the customer) is answered by Flask, exactly once.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
import redis
from sqlalchemy import func, select

from app import create_app
from extensions import db
from models import UsageAlert, UsageEvent
from tests.conftest import write_plans
from tests.support.staff import make_staff, staff_login, token, user_id_of
from views.api import gate_path

pytestmark = pytest.mark.money  # SQLite (Flask serves) and PostgreSQL (the path serves)

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = 10
PER_MINUTE = 30
# Headers whose values change from one answer to the next.
MOVING = {"Content-Length", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Date"}


@pytest.fixture
def app_config(tmp_path) -> dict:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    return {"TALLY_CONFIG_FILE": write_plans(
                tmp_path / "plans.json",
                free={"apiCalls": LIMIT, "llmTokens": 1000, "storage": None,
                      "requestsPerMinute": PER_MINUTE, "lifetimeApiCalls": None}),
            "RATELIMIT_STORAGE_URI": REDIS_URL.replace("redis", "tally+redis", 1),
            "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"}


def authorize(client, key: str, body: dict | None = None, **headers: str):
    data = json.dumps(body).encode() if body is not None else None
    return client.post("/v1/authorize", data=data, headers={
        "X-Api-Key": key, **({"Content-Type": "application/json"} if data else {}), **headers})


def served(app) -> int:
    """Calls answered in front of Flask."""
    return app.extensions[gate_path.EXTENSION].served


def warm(app, client, key: str, backend: str) -> None:
    """Three calls: the first two fill this worker's key cache (the key, then the role it
    acts with); on PostgreSQL the third is answered in front of Flask."""
    for _ in range(2):
        assert authorize(client, key).status_code == 200
    before = served(app)
    assert authorize(client, key).status_code == 200
    assert served(app) == before + (1 if backend == "postgresql" else 0)


def recorded(app, account_id: str) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(UsageEvent).where(
            UsageEvent.account_id == account_id))
        db.session.remove()
    return int(count or 0)


def remaining(response) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


def test_answers_headers_and_counts_are_flasks_whoever_answers(app, client, customer, backend):
    answers = [authorize(client, customer.api_key, {"event_name": "api_call"} if i % 2 else None)
               for i in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    for i, answer in enumerate(answers, start=1):
        assert answer.get_json() == {"allowed": True, "account_id": customer.account_id,
                                     "tier": "free", "usage": {"current": i, "limit": LIMIT},
                                     "remaining": LIMIT - i}
        # jsonify's bytes: compact, in the documented order, one newline
        assert answer.data == (json.dumps(answer.get_json(), separators=(",", ":")) + "\n").encode()
    first, last = answers[0], answers[-1]  # the first is Flask's (the key was not cached yet)
    assert sorted(first.headers.keys()) == sorted(last.headers.keys())
    assert {k: v for k, v in first.headers.items() if k not in MOVING} == \
        {k: v for k, v in last.headers.items() if k not in MOVING}
    # One rate-limit window, one entry per call, whoever answered
    assert [remaining(a) for a in answers] == [PER_MINUTE - i for i in range(1, 7)]
    assert recorded(app, customer.account_id) == 6
    if backend == "postgresql":
        assert served(app) >= 4  # all but the calls that filled the cache


def test_a_refused_call_is_flasks_402_and_takes_one_entry(app, client, customer, backend,
                                                          monkeypatch):
    monkeypatch.setattr(gate_path, "PAUSE_SECONDS", 0.0)  # the path tries again at once
    no_alerts = client.post("/v1/billing/settings", json={"alert_thresholds": []},
                            headers=customer.headers)
    assert no_alerts.status_code == 200  # (an alert's call is Flask's too: not this test's)
    answers = [authorize(client, customer.api_key, {"quantity": 4}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 402, 402]
    refused = answers[2].get_json()
    assert refused["code"] == "usage_limit_exceeded"
    assert refused["usage"] == {"current": 8, "limit": LIMIT}
    # (the settings call took the first entry)
    assert [remaining(a) for a in answers] == [PER_MINUTE - i for i in range(2, 6)]
    assert recorded(app, customer.account_id) == 2
    before = served(app)
    small = authorize(client, customer.api_key, {"quantity": 2})  # what is left still fits
    assert small.status_code == 200 and small.get_json()["usage"]["current"] == LIMIT
    assert remaining(small) == PER_MINUTE - 6
    assert recorded(app, customer.account_id) == 3
    if backend == "postgresql":
        assert served(app) == before + 1


def test_each_usage_alert_is_recorded_and_emailed_once_as_the_gate_crosses_it(
        app, client, customer, mail, backend):
    answers = [authorize(client, customer.api_key) for _ in range(LIMIT + 1)]
    # The call that reached 80% once answered 500: the alert's email read the cached
    # account's customer, which is not in the session.
    assert [a.status_code for a in answers] == [200] * LIMIT + [402]
    with app.app_context():
        alerts = db.session.execute(select(UsageAlert.threshold, UsageAlert.value)
                                    .where(UsageAlert.account_id == customer.account_id)
                                    .order_by(UsageAlert.threshold)).all()
        db.session.remove()
    assert [tuple(a) for a in alerts] == [(80, 8), (100, 10)]
    usage_mail = [m["Subject"] for m in mail.messages if "usage" in m["Subject"].lower()]
    assert len(usage_mail) == 2, usage_mail
    assert recorded(app, customer.account_id) == LIMIT
    if backend == "postgresql":
        assert served(app) >= 5  # the calls between the cache filling and the first alert


def test_a_repeated_id_is_answered_again_and_counted_once(app, client, customer, backend):
    warm(app, client, customer.api_key, backend)
    first = authorize(client, customer.api_key, {"id": "req_1"})
    again = authorize(client, customer.api_key, {"id": "req_1"})
    assert first.get_json()["usage"]["current"] == 4 and "duplicate" not in first.get_json()
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["usage"]["current"] == 4
    assert [remaining(a) for a in (first, again)] == [PER_MINUTE - 4, PER_MINUTE - 5]
    assert recorded(app, customer.account_id) == 4


def test_a_call_the_path_recorded_and_could_not_answer_counts_once(app, client, customer,
                                                                   backend, monkeypatch):
    def lost(*args, **kwargs):
        raise ConnectionError("the answer was lost after the commit")

    warm(app, client, customer.api_key, backend)
    monkeypatch.setattr(gate_path.GatePath, "_answer", lost)
    answers = [authorize(client, customer.api_key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [a.get_json()["usage"]["current"] for a in answers] == [4, 5, 6]
    assert all("duplicate" not in a.get_json() for a in answers)  # the caller sent no id
    assert [remaining(a) for a in answers] == [PER_MINUTE - 4, PER_MINUTE - 5, PER_MINUTE - 6]
    assert recorded(app, customer.account_id) == 6


@pytest.mark.parametrize("body, content_type, status, code", [
    (b"{not json", "application/json", 400, "invalid_json"),
    (b"[1, 2]", "application/json", 400, "invalid_json"),
    (b'{"event_name": "api_calls"}', "application/json", 400, "unknown_event_name"),
    (b'{"quantity": 0}', "application/json", 400, "invalid_request"),
    (b'{"event_name": "api\\u0000call"}', "application/json", 400, "invalid_json"),
    (b'{"id": "\xed\xa0\x80"}', "application/json", 400, "invalid_json"),  # a surrogate in UTF-8
    (b"event_name=api_call", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
])
def test_a_bad_body_is_flasks_error_and_counts_nothing(app, client, customer, backend, body,
                                                       content_type, status, code):
    warm(app, client, customer.api_key, backend)
    answer = client.post("/v1/authorize", data=body,
                         headers={"X-Api-Key": customer.api_key, "Content-Type": content_type})
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.get_json()["code"] == code
    assert recorded(app, customer.account_id) == 3


def test_an_empty_idempotency_key_is_refused_and_a_key_replays(app, client, customer, backend):
    warm(app, client, customer.api_key, backend)
    empty = authorize(client, customer.api_key, {"event_name": "api_call"}, **{"Idempotency-Key": ""})
    assert empty.status_code == 400 and empty.get_json()["param"] == "Idempotency-Key"
    first = authorize(client, customer.api_key, {}, **{"Idempotency-Key": "k1"})
    again = authorize(client, customer.api_key, {}, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json() == {
        "allowed": True, "account_id": customer.account_id, "tier": "free",
        "usage": {"current": 4, "limit": LIMIT}, "remaining": LIMIT - 4}
    assert recorded(app, customer.account_id) == 4


def test_a_body_over_the_apps_limit_is_flasks_413(app, client, customer, backend):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    warm(app, client, customer.api_key, backend)
    big = authorize(client, customer.api_key, {"properties": {"note": "x" * 2000}})
    assert big.status_code == 413
    assert recorded(app, customer.account_id) == 3


def test_a_rotated_or_revoked_key_is_refused_at_once(app, client, customer, backend):
    warm(app, client, customer.api_key, backend)
    rotated = client.post("/v1/keys/rotate", headers=customer.headers)
    assert rotated.status_code == 200
    assert authorize(client, customer.api_key).status_code == 401
    key = rotated.get_json()["api_key"]
    before = served(app)
    for _ in range(4):  # (the cache reads a key twice after the generation it saw moved)
        assert authorize(client, key).status_code == 200
    assert served(app) > before or backend == "sqlite"
    key_id = client.get("/v1/keys", headers={"X-Api-Key": key}).get_json()["data"][0]["id"]
    assert client.delete(f"/v1/keys/{key_id}", headers={"X-Api-Key": key}).status_code in (200, 204)
    assert authorize(client, key).status_code == 401
    assert recorded(app, customer.account_id) == 7


def test_a_key_revoked_through_another_process_is_refused_by_this_one(app, client, customer,
                                                                     backend):
    other = create_app({name: app.config[name] for name in (
        "TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "RATELIMIT_STORAGE_URI",
        "RATELIMIT_KEY_PREFIX", "TALLY_CONFIG_FILE", "STRIPE_SECRET_KEY", "STRIPE_API_BASE",
        "PASSWORD_HASH_CHEAP")})
    elsewhere = other.test_client()
    warm(app, client, customer.api_key, backend)  # both processes' caches hold the key
    warm(other, elsewhere, customer.api_key, backend)
    key_id = elsewhere.get("/v1/keys", headers=customer.headers).get_json()["data"][0]["id"]
    assert elsewhere.delete(f"/v1/keys/{key_id}", headers=customer.headers).status_code in (200, 204)
    refused = authorize(client, customer.api_key)
    assert refused.status_code == 401 and refused.get_json()["code"] == "invalid_api_key"
    assert recorded(app, customer.account_id) == 6
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_staff_viewing_as_the_customer_cannot_call_the_gate_with_its_key(app, client, customer,
                                                                         backend):
    warm(app, app.test_client(), customer.api_key, backend)
    staff = make_staff(app)
    staff_login(client, staff)
    user_id = user_id_of(app, customer.email)
    csrf = token(client.get("/staff/").get_data(as_text=True))
    started = client.post(f"/staff/users/{user_id}/impersonate",
                          data={f"{user_id}-imp-reason": "Ticket 7: usage looks wrong",
                                f"{user_id}-imp-csrf_token": csrf})
    assert started.status_code == 303
    answer = authorize(client, customer.api_key, {"event_name": "api_call"})  # with the cookie
    assert answer.status_code == 403
    assert answer.get_json()["code"] == "impersonation_read_only"
    assert recorded(app, customer.account_id) == 3
