"""POST /v1/authorize as production serves it: rate limits in Redis, keys cached per process."""

from __future__ import annotations

import json
import os
import uuid

import pytest
import redis
from sqlalchemy import func, select

from extensions import db
from models import UsageAlert, UsageEvent
from tests.conftest import write_plans

pytestmark = pytest.mark.money

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = 10
PER_MINUTE = 30


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


def recorded(app, account_id: str) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(UsageEvent).where(
            UsageEvent.account_id == account_id))
        db.session.remove()
    return int(count or 0)


def test_each_usage_alert_is_recorded_once_as_the_gate_crosses_it(app, client, customer):
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
    assert recorded(app, customer.account_id) == LIMIT
