"""The Tally app plus two bench-only routes, for bench/gate.py only (never used by the app).

    gunicorn 'bench.gate_app:app'

- `POST /bench/bare` returns {"ok": true}: the cost of Flask and the app's hooks alone.
- `POST /bench/floor` does the least any gate must do per call, with the raw drivers and no
  logic: one Redis round trip (a rate-limit counter) and one durable PostgreSQL write
  (an autocommit INSERT, so a commit and its WAL flush). It bounds what the gate could reach.
"""

from __future__ import annotations

import os

import psycopg
import redis

from app import create_app
from extensions import csrf

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
        conn = psycopg.connect(url, autocommit=True)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, "
                     "at timestamptz NOT NULL DEFAULT now())")
        _floor.update(pid=os.getpid(), redis=redis.Redis.from_url(os.environ["REDIS_URL"]), pg=conn)
    return _floor["redis"], _floor["pg"]  # type: ignore[return-value]


@app.post("/bench/floor")
@csrf.exempt
def floor():
    cache, pg = _floor_connections()
    cache.incr("bench:floor")
    pg.execute("INSERT INTO bench_floor DEFAULT VALUES")
    return {"ok": True}
