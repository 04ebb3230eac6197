"""The Tally app plus two bench-only routes, for bench/gate.py only (never used by the app).

    gunicorn 'bench.gate_app:app'

- `POST /bench/bare` returns {"ok": true}: the cost of Flask and the app's hooks alone.
- `POST /bench/floor` does the least a gate must do per call, in the gate's order, with the
  raw drivers and no other logic: look the key up (one PostgreSQL read, so a revoked key
  is refused by every worker at once), take a rate-limit entry (one Redis round trip),
  and record the call durably (one autocommit INSERT: a commit and its WAL flush). No
  gate built on these services can be cheaper, so its rate bounds the gate's.
"""

from __future__ import annotations

import os

import psycopg
import redis
from flask import request

from app import create_app
from extensions import csrf
from services.identity.keys import hash_key

app = create_app()
_floor: dict[str, object] = {}


@app.post("/bench/bare")
@csrf.exempt
def bare():
    return {"ok": True}


def _floor_connections() -> tuple[redis.Redis, psycopg.Connection]:
    """One Redis client and one PostgreSQL connection per worker, made after the fork."""
    if _floor.get("pid") != os.getpid():
        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        conn = psycopg.connect(url, autocommit=True)  # bench_floor: made by gate.py
        _floor.update(pid=os.getpid(), redis=redis.Redis.from_url(os.environ["REDIS_URL"]), pg=conn)
    return _floor["redis"], _floor["pg"]  # type: ignore[return-value]


@app.post("/bench/floor")
@csrf.exempt
def floor():
    cache, pg = _floor_connections()
    key = pg.execute("SELECT account_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                     (hash_key(request.headers["X-Api-Key"]),)).fetchone()
    cache.incr(f"bench:floor:{key[0]}")
    pg.execute("INSERT INTO bench_floor DEFAULT VALUES")
    return {"ok": True}
