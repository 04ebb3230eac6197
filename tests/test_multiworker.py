"""Several gunicorn processes sharing PostgreSQL (or SQLite) and Redis: rate limits hold
across them, and a rotated key is refused by every one of them at once. Each test runs on
two servers of one worker each, and on one server of four workers."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial

import pytest
import redis

from extensions import db
from models import UsageEvent
from tests.conftest import write_plans
from tests.support.servers import base_env, flask_cli, gunicorn
from tests.support.threads import at_once

pytestmark = pytest.mark.money

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RPM = 10


def call(url: str, path: str, key: str, method: str = "POST") -> tuple[int, dict]:
    request = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None,
                                     headers={"X-Api-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def rpm() -> int:
    """The free plan's requests per minute on these servers."""
    return RPM


@pytest.fixture(params=[(2, 1), (1, 4)], ids=["2-servers-1-worker", "1-server-4-workers"])
def servers(request, app, backend, tmp_path, rpm):
    """Gunicorn servers (how many, and workers each, from the parameter) on the test
    database, sharing Redis; yields their URLs and the demo's key."""
    count, workers = request.param
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    with app.app_context():
        database_url = str(db.engine.url.render_as_string(hide_password=False))
        db.drop_all()
        db.session.remove()
    env = base_env(database_url, tmp_path, REDIS_URL=REDIS_URL,
                   TALLY_RATELIMIT_PREFIX=f"test-{uuid.uuid4().hex}",
                   TALLY_CONFIG_FILE=write_plans(tmp_path / "plans.json",
                                                 free={"apiCalls": 1000, "requestsPerMinute": rpm}))
    flask_cli(env, "db", "upgrade")
    demo = json.loads(flask_cli(env, "seed-demo"))
    with ExitStack() as stack:
        urls = [stack.enter_context(gunicorn(env, workers)) for _ in range(count)]
        yield urls, demo["api_key"]


def test_rate_limit_holds_across_processes(app, servers):
    urls, key = servers
    results = [status for status, _ in at_once(
        [partial(call, urls[i % len(urls)], "/v1/authorize", key) for i in range(3 * RPM)])]
    assert results.count(200) == RPM and results.count(429) == 2 * RPM
    # Allowed calls were recorded once each, refused ones not at all.
    with app.app_context():
        assert db.session.query(UsageEvent).count() == RPM
        db.session.remove()


@pytest.mark.parametrize("rpm", [10**6])
def test_rotated_key_is_refused_by_every_process(servers):
    """Rotate again and again; the moment each rotation answers, the old key gets 401 from
    every process (16 concurrent calls spread over the workers) and the new one works."""
    urls, key = servers
    for _ in range(5):
        status, rotated = call(urls[0], "/v1/keys/rotate", key)
        assert status == 200
        old, key = key, rotated["api_key"]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i, k: call(urls[i % len(urls)], "/v1/me", k, "GET")[0],
                                    range(16), [old, key] * 8))
        assert answers == [401, 200] * 8
