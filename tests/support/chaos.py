"""Tools for the chaos tests (tests/chaos): a client that retries the way Stripe and a
careful script do, the faults to inject (a gunicorn worker killed mid-request, the app's
database connections dropped), and the figures each scenario writes for RELIABILITY.md.

`TALLY_CHAOS_SCALE` multiplies every scenario's size (default 1: what `make test` runs);
`TALLY_CHAOS_FIGURES` names a folder where each scenario writes `<name>.json`
(`bench/reliability.py` sets both).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from tests.support.servers import Server

SCALE = float(os.environ.get("TALLY_CHAOS_SCALE") or 1)
FIGURES_DIR = os.environ.get("TALLY_CHAOS_FIGURES")
CONNECTION_FAILED = 0  # the status recorded when no HTTP answer came back


def scaled(n: int) -> int:
    return max(1, round(n * SCALE))


def with_application_name(database_url: str, name: str) -> str:
    """The URL with `application_name` set, so the app's backends can be told apart."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    query["application_name"] = name
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class Traffic:
    """What the clients sent, thread-safe: requests (every attempt), retries, and the
    failures that caused them."""

    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **amounts: int) -> None:
        with self.lock:
            self.counts.update(amounts)


@dataclass(frozen=True)
class Reply:
    status: int  # CONNECTION_FAILED when the connection broke before an answer
    body: Any
    attempts: int


def send(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, Any]:
    """One attempt; (status, parsed JSON body or None)."""
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as error:
        try:  # an error answer (a 402) cut off by a killed worker or a dropped connection
            raw = error.read()
        except (OSError, http.client.HTTPException):
            return CONNECTION_FAILED, None
        return error.code, _json(raw)
    except (OSError, http.client.HTTPException):  # reset, refused, closed mid-answer
        return CONNECTION_FAILED, None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def retryable(status: int) -> bool:
    """What Stripe retries a webhook on (no answer, or not 2xx/4xx), and what a careful
    client retries a request on: no answer, or a 5xx."""
    return status == CONNECTION_FAILED or status >= 500


def send_with_retries(method: str, url: str, body: bytes | None,
                      headers: dict[str, str] | Callable[[], dict[str, str]] | None = None, *,
                      traffic: Traffic | None = None, attempts: int = 12,
                      retry: Callable[[int], bool] = retryable) -> Reply:
    """Send until an answer that `retry` accepts, backing off exponentially with jitter
    (as Stripe does with webhooks, compressed into seconds). `headers` may be a function,
    called per attempt (a webhook is signed afresh on each delivery)."""
    delay = 0.05
    for attempt in range(1, attempts + 1):
        status, answer = send(method, url, body, headers() if callable(headers) else headers)
        if traffic is not None:
            traffic.add(requests=1, retries=int(attempt > 1),
                        connection_failures=int(status == CONNECTION_FAILED),
                        server_errors=int(status >= 500))
        if not retry(status) or attempt == attempts:
            return Reply(status, answer, attempt)
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


class Faults:
    """Faults injected into a running server, counted."""

    def __init__(self, server: Server, database_url: str, application_name: str,
                 seed: int = 7) -> None:
        self.server, self.database_url, self.application_name = server, database_url, application_name
        self.rng = random.Random(seed)
        self.counts: Counter = Counter()
        self.lock = threading.Lock()

    def kill_worker(self) -> None:
        """SIGKILL one gunicorn worker; gunicorn starts another."""
        killed = self.server.kill_worker(self.rng)
        with self.lock:
            self.counts["workers_killed"] += int(killed is not None)

    def drop_database_connections(self) -> None:
        """`pg_terminate_backend` on every backend the app holds open, busy or idle."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            dropped = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.application_name,)).fetchall()
        with self.lock:
            self.counts["database_drops"] += 1
            self.counts["database_connections_dropped"] += len(dropped)

    def inject(self, n: int) -> None:
        """The n-th fault: worker kills and connection drops, in turn."""
        (self.kill_worker if n % 2 == 0 else self.drop_database_connections)()


def write_figures(name: str, figures: dict[str, Any]) -> None:
    """Record a scenario's figures for bench/reliability.py (when it asked for them)."""
    if FIGURES_DIR:
        path = Path(FIGURES_DIR)
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{name}.json").write_text(json.dumps({"scale": SCALE, **figures}, indent=2))
