"""The gate's per-process key cache (services/identity/key_cache.py) on several gunicorn
workers sharing PostgreSQL (or SQLite) and Redis: once every worker has served the gate
with a key, a rotation or a revocation is still refused by every one of them the moment
the call that made it answers, and a call with a key that was refused takes no rate-limit
entry."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

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
