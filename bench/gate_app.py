"""The Tally app plus two bench-only routes, for bench/gate.py only (never used by the app).

    gunicorn 'bench.gate_app:app'

- `POST /bench/bare` returns {"ok": true}: the cost of Flask and the app's hooks alone.
- `POST /bench/floor` does the least a gate must do per call, in the gate's order, with the
  raw drivers and no other logic: look the key up (one PostgreSQL read, so a revoked key
  is refused by every worker at once), take a rate-limit entry (one Redis round trip),
  and record the call durably (one autocommit INSERT: a commit and its WAL flush). No
  gate built on these services can be cheaper, so its rate bounds the gate's.
- `POST /bench/floor-wsgi` does the same in front of Flask (WSGI middleware, no request
  hooks), as views/api/gate_path.py serves the gate: the floor for a gate that skips
  Flask's routing, which the gate now does.
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


def _least_a_gate_does(plaintext: str) -> None:
    cache, pg = _floor_connections()
    key = pg.execute("SELECT account_id FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
                     (hash_key(plaintext),)).fetchone()
    cache.incr(f"bench:floor:{key[0]}")
    pg.execute("INSERT INTO bench_floor DEFAULT VALUES")


@app.post("/bench/floor")
@csrf.exempt
def floor():
    _least_a_gate_does(request.headers["X-Api-Key"])
    return {"ok": True}


class _FloorInFront:
    """POST /bench/floor-wsgi before Flask routes it."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/bench/floor-wsgi":
            return self.wsgi_app(environ, start_response)
        _least_a_gate_does(environ["HTTP_X_API_KEY"])
        body = b'{"ok":true}\n'
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]


app.wsgi_app = _FloorInFront(app.wsgi_app)
