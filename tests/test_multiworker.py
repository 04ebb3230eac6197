"""Several gunicorn processes sharing PostgreSQL (or SQLite) and Redis: rate limits hold
across them, and a rotated key is refused by every one of them at once."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack

import pytest
import redis

from extensions import db
from models import UsageEvent
from tests.conftest import write_plans
from tests.support.servers import base_env, flask_cli, gunicorn

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
def servers(app, backend, tmp_path):
    """Two gunicorn servers (one worker each) on the test database, sharing Redis."""
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
                                                 free={"apiCalls": 1000, "requestsPerMinute": RPM}))
    flask_cli(env, "db", "upgrade")
    demo = json.loads(flask_cli(env, "seed-demo"))
    with ExitStack() as stack:
        urls = [stack.enter_context(gunicorn(env)) for _ in range(2)]
        yield urls, demo["api_key"]


def test_rate_limit_holds_across_processes(app, servers):
    urls, key = servers
    results: list[int] = []
    lock = threading.Lock()

    def hit(i: int) -> None:
        status, _ = call(urls[i % 2], "/v1/authorize", key)
        with lock:
            results.append(status)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(3 * RPM)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(200) == RPM and results.count(429) == 2 * RPM
    # Allowed calls were recorded once each, refused ones not at all.
    with app.app_context():
        assert db.session.query(UsageEvent).count() == RPM
        db.session.remove()


def test_rotated_key_is_refused_by_every_process(servers):
    urls, key = servers
    status, rotated = call(urls[0], "/v1/keys/rotate", key)
    assert status == 200
    for url in urls:
        assert call(url, "/v1/me", key, method="GET")[0] == 401
        assert call(url, "/v1/me", rotated["api_key"], method="GET")[0] == 200
