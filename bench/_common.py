"""Shared by the benchmarks: a fresh PostgreSQL database, the CLI, gunicorn, the HTTP client
loop, statistics.

Loopback only. Every bench drops and recreates its own database (default `bench`; never
`test`, which the test suite drops) and uses its own Redis key prefix.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIG = 100_000_000


def database_url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def fresh_database(name: str) -> str:
    """Drop and create `name`; return its URL."""
    import psycopg

    if name in ("test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing to use the database {name!r}; pick your own with --db")
    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def write_plans(path: Path, monthly_limit: int | None) -> str:
    """A plans file whose free plan never stops a bench: huge limits, no lifetime limit."""
    plans = {"free": {"apiCalls": monthly_limit, "llmTokens": monthly_limit, "storage": None,
                      "requestsPerMinute": BIG, "lifetimeApiCalls": None}}
    path.write_text(json.dumps({"billing": {"plans": plans}}))
    return str(path)


def bench_env(db_url: str, workdir: Path, *, monthly_limit: int | None = 10**15,
              redis_url: str | None = REDIS_URL) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "TALLY_"))}
    env.update({
        "DATABASE_URL": db_url,
        "SECRET_KEY": "bench-secret",
        "PYTHONPATH": str(REPO_ROOT),
        "TALLY_RATELIMIT_PREFIX": f"bench-{uuid.uuid4().hex}",
        "TALLY_CONFIG_FILE": write_plans(workdir / "plans.json", monthly_limit),
    })
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def flask_cli(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def migrate_and_seed(env: dict[str, str]) -> dict[str, str]:
    """`db upgrade` then `seed-demo`; the demo's JSON line (api_key, account_id, ...)."""
    flask_cli(env, "db", "upgrade")
    out = flask_cli(env, "seed-demo")
    return json.loads(out.strip().splitlines()[-1])


def more_customers(env: dict[str, str], count: int) -> list[str]:
    """Sign up `count` more customers (as the sign-up page does); their first API keys."""
    if count <= 0:
        return []
    script = ("import json\nfrom app import create_app\nfrom services import uow\n"
              "from services.identity import accounts\napp = create_app()\nkeys = []\n"
              "with app.app_context():\n"
              f"    for i in range({count}):\n"
              "        with uow.unit():\n"
              "            made = accounts.sign_up(email=f'bench{i}@example.com', "
              "password='bench password 1234', name=f'Bench {i}')\n"
              "        keys.append(made.api_key)\n"
              "print(json.dumps(keys))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"signing up bench customers failed:\n{result.stderr}")
    keys: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return keys


@contextmanager
def seeded_database(name: str) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """Drop and create the database `name`, migrate it and seed the demo customer; yield its
    URL, the app's environment (valid inside the block: its plans file is temporary) and
    the demo's JSON line."""
    db_url = fresh_database(name)
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(db_url, Path(tmp))
        yield db_url, env, migrate_and_seed(env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, app_spec: str = "app:create_app()",
             extra: tuple[str, ...] = (),
             profile: str | None = None) -> Iterator[tuple[str, int, int]]:
    """Serve `app_spec` with gunicorn on a free loopback port; yield (host, port, pid).

    `profile`: a file for py-spy's collapsed stacks of every worker (py-spy must be
    installed in the virtualenv: `.venv/bin/pip install py-spy`).
    """
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
               "--backlog", "2048", *extra, app_spec]
    if profile:
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        command = [py_spy, "record", "--subprocesses", "--format", "raw", "--rate", "250",
                   "--output", profile, "--", *command]
    with tempfile.TemporaryFile(mode="w+") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            url = f"http://127.0.0.1:{port}/v1/billing/config"
            while True:
                try:
                    urllib.request.urlopen(url, timeout=1).close()
                    break
                except (OSError, urllib.error.URLError):
                    if process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        raise RuntimeError(f"gunicorn did not start:\n{output.read()}") from None
                    time.sleep(0.1)
            yield "127.0.0.1", port, process.pid
        finally:
            process.send_signal(signal.SIGINT if profile else signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            output.seek(0)
            log = output.read().splitlines()
            tracebacks = [i for i, line in enumerate(log) if line.startswith("Traceback")]
            if tracebacks:
                first = tracebacks[0]
                tail = next((i for i in range(first + 1, len(log)) if log[i][:1] not in (" ", "")),
                            len(log) - 1)
                print(f"# gunicorn logged {len(tracebacks)} traceback(s); the first ends with:")
                print("\n".join("#   " + line for line in log[max(first, tail - 6):tail + 1]))


def post_each(host: str, port: int, path: str, headers: dict[str, str], bodies: Iterable[bytes],
              timeout: float) -> Iterator[tuple[int, bytes, float]]:
    """POST each body in turn over one connection; yield (status, response body, seconds) per
    request, as the client sees it: connect included when a new connection is needed
    (gunicorn's sync workers close it after each response). A request that failed on the
    connection yields status 0, and the next one connects again."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        for body in bodies:
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                status, data = response.status, response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                status, data = 0, b""
            yield status, data, time.perf_counter() - started
    finally:
        conn.close()


def for_seconds(body: bytes, seconds: float) -> Iterator[bytes]:
    """`body` again and again until `seconds` have passed."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        yield body


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (gunicorn's master and workers), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += parents.get(tree[-1], [])
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (0 for any gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def backend_pids(db_name: str) -> list[int]:
    """PostgreSQL backends connected to `db_name` (the app's pooled connections)."""
    import psycopg

    with psycopg.connect(database_url("postgres")) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_name,))]


class CpuMeter:
    """CPU used by gunicorn (master and workers) and by the database's backends, between
    start and stop, and by this process (the client, for a threaded client)."""

    def __init__(self, gunicorn_pid: int, db_name: str) -> None:
        self.gunicorn_pid, self.db_name = gunicorn_pid, db_name

    def start(self) -> None:
        self.workers = process_tree(self.gunicorn_pid)
        self.backends = backend_pids(self.db_name)
        self.before = (cpu_seconds(self.workers), cpu_seconds(self.backends),
                       time.process_time())

    def stop(self) -> tuple[float, float, float]:
        """(gunicorn, PostgreSQL backends, this process) CPU seconds since start."""
        return (cpu_seconds(self.workers) - self.before[0],
                cpu_seconds(self.backends) - self.before[1],
                time.process_time() - self.before[2])


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def describe_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"median {statistics.median(ms):.2f} ms, p95 {percentile(ms, 95):.2f} ms, "
            f"p99 {percentile(ms, 99):.2f} ms, min {min(ms):.2f} ms, max {max(ms):.2f} ms")


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every bench that serves the app with gunicorn."""
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--db", default="bench", help="database to drop and recreate (not 'test')")
    parser.add_argument("--profile", help="write py-spy collapsed stacks of the workers here")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_header() -> None:
    """What a bench's figures depend on: the machine, and how busy it was before."""
    print(f"# machine: {machine()}")
    print(f"# load average before: {load_average()}")


def machine() -> str:
    import psycopg

    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        with psycopg.connect(database_url("postgres")) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        pg = "?"
    return (f"nproc {os.cpu_count()}, memory {mem_kb / 1024 / 1024:.1f} GiB, "
            f"Python {platform.python_version()}, PostgreSQL {pg}, {platform.machine()}")
