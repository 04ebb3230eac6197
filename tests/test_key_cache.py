"""The gate's per-process key cache (services/identity/key_cache.py) on several gunicorn
workers sharing PostgreSQL (or SQLite) and Redis: once every worker has served the gate
with a key, a rotation or a revocation is still refused by every one of them the moment
the call that made it answers, and a call with a key that was refused takes no rate-limit
entry."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from extensions import db
from models import ApiKey
from services.identity import keys
from tests.support.members import add_member
from tests.test_multiworker import call, rpm, servers  # noqa: F401  (fixtures)

pytestmark = pytest.mark.money

CALLS = 16  # concurrent calls, spread over the workers (each has its own cache)


def authorize_all(urls: list[str], keys: list[str]) -> list[int]:
    with ThreadPoolExecutor(CALLS) as pool:
        return list(pool.map(lambda i, k: call(urls[i % len(urls)], "/v1/authorize", k)[0],
                             range(len(keys)), keys))


@pytest.fixture
def rpm() -> int:  # noqa: F811
    return 1000


def test_rotated_and_revoked_keys_are_refused_by_every_cache(servers):  # noqa: F811
    urls, key = servers
    for _ in range(3):
        assert authorize_all(urls, [key] * CALLS) == [200] * CALLS  # every worker caches it
        status, rotated = call(urls[0], "/v1/keys/rotate", key)
        assert status == 200
        old, key = key, rotated["api_key"]
        assert authorize_all(urls, [old, key] * (CALLS // 2)) == [401, 200] * (CALLS // 2)
    status, keys = call(urls[0], "/v1/keys", key, "GET")
    assert status == 200
    assert authorize_all(urls, [key] * CALLS) == [200] * CALLS
    status, _ = call(urls[0], f"/v1/keys/{keys['data'][0]['id']}", key, "DELETE")
    assert status in (200, 204)
    assert authorize_all(urls, [key] * CALLS) == [401] * CALLS


def send(url: str, path: str, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"X-Api-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_role_change_reaches_every_cache_at_once(app, servers):  # noqa: F811
    """A key acts with its creator's role, kept in each worker's cache: once every worker
    has served the gate with a developer's key, the owner making them a viewer is refused
    by every worker the moment it answers, and making them a developer again lets it in."""
    urls, owner_key = servers
    with app.app_context():
        account_id = db.session.scalar(select(ApiKey.account_id).where(
            ApiKey.key_hash == keys.hash_key(owner_key)))
        db.session.remove()
    developer = add_member(app, account_id, "developer")
    status, listed = call(urls[0], "/v1/members", owner_key, "GET")
    assert status == 200
    member_id = next(m["id"] for m in listed["data"] if m["email"] == developer.email)
    before = 200
    for role, expected in (("viewer", 403), ("developer", 200), ("billing", 403), ("admin", 200)):
        assert authorize_all(urls, [developer.api_key] * CALLS) == [before] * CALLS  # all cache it
        status, changed = send(urls[0], f"/v1/members/{member_id}", owner_key, {"role": role})
        assert status == 200 and changed["role"] == role
        assert authorize_all(urls, [developer.api_key] * CALLS) == [expected] * CALLS, role
        before = expected
