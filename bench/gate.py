"""Requests/s and latency of POST /v1/authorize against a bare Flask JSON route.

    .venv/bin/python bench/gate.py [--seconds 6] [--rounds 2] [--clients 4] [--workers 2]
                                   [--accounts 1]

One gunicorn (sync workers) serves bench/gate_app.py: the whole app (PostgreSQL, Redis
rate limits with a limit no bench reaches, plan limits large but set, so the gate's
conditional UPDATE runs) plus POST /bench/bare returning {"ok": true} and POST /bench/floor
(the least any gate must do: a key read, a Redis round trip and a durable INSERT, with the
raw drivers; see gate_app.py), which bounds the ratio any gate can reach. gunicorn runs with
the project's gunicorn.conf.py (threaded workers, keep-alive), as `make serve` does; only the
worker count comes from --workers. The same client processes (http.client, pre-serialised
bodies) hit each route in turn, for a fixed time, alternating over rounds, twice: with a new
connection per request (`Connection: close`, as a client without a pool) and over one
kept-alive connection per client (as a server calling the gate with a pool). Latency is per
request as the client sees it, connect included where there is one. The last line,
`authorize/floor: X.XX`, is the ratio of the authorize and floor rates without keep-alive
(the issue's target); the keep-alive ratio is printed beside it. The gate is served in
front of Flask's routing (views/api/gate_path.py), so the floor's work done there too
(`floor-wsgi`, gate_app.py) is measured and its ratio printed as well.

`--accounts N` spreads the clients over N customers' keys (client i uses key i mod N), for
the floor and the gate alike: with one customer (the default) every gate call moves the
same counter rows, whose locks the calls take in turn; a gate in front of a real API
serves many customers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import _common

AUTHORIZE_BODY = b'{"event_name":"api_call"}'


def client(host: str, port: int, path: str, headers: dict[str, str], body: bytes, seconds: float,
           out: multiprocessing.Queue, key: str | None) -> None:
    if key is not None and "X-Api-Key" in headers:
        headers = {**headers, "X-Api-Key": key}
    latencies: list[float] = []
    errors = 0
    cpu = time.process_time()
    for status, _, elapsed in _common.post_each(host, port, path, headers,
                                                _common.for_seconds(body, seconds), timeout=30):
        if status == 200:
            latencies.append(elapsed)
        else:
            errors += 1
    out.put((latencies, errors, time.process_time() - cpu))


class Run:
    """What one route's requests added up to."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.wall = self.server_cpu = self.db_cpu = self.client_cpu = 0.0


def hammer(host: str, port: int, path: str, headers: dict[str, str], body: bytes, seconds: float,
           clients: int, run: Run, cpu: _common.CpuMeter, keys: list[str]) -> None:
    """`clients` processes for `seconds` (client i with keys[i % len(keys)]); adds to `run`."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(host, port, path, headers, body, seconds,
                                                          out, keys[i % len(keys)] if keys else None))
             for i in range(clients)]
    cpu.start()
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    run.wall += time.perf_counter() - started
    server_cpu, db_cpu, _ = cpu.stop()
    run.server_cpu += server_cpu
    run.db_cpu += db_cpu
    for latencies, errors, client_cpu in results:
        run.latencies += latencies
        run.errors += errors
        run.client_cpu += client_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per route per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--accounts", type=int, default=1, help="customers the clients call as")
    _common.add_server_arguments(parser)
    args = parser.parse_args()

    _common.print_header()
    routes = {
        "bare": ("/bench/bare", {"Content-Type": "application/json"}, b"{}"),
        "floor": ("/bench/floor", {"Content-Type": "application/json"}, b"{}"),
        "floor-wsgi": ("/bench/floor-wsgi", {"Content-Type": "application/json"}, b"{}"),
        "authorize": ("/v1/authorize", {"Content-Type": "application/json"}, AUTHORIZE_BODY),
    }
    modes = {"close": {"Connection": "close"}, "keep-alive": {}}
    runs = {(name, mode): Run() for mode in modes for name in routes}
    with _common.seeded_database(args.db) as (db_url, env, demo):
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:  # the floor route's table
            conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, "
                         "at timestamptz NOT NULL DEFAULT now())")
        for name in ("authorize", "floor", "floor-wsgi"):
            routes[name][1]["X-Api-Key"] = demo["api_key"]
        keys = [demo["api_key"], *_common.more_customers(env, args.accounts - 1)]
        with _common.gunicorn(env, workers=args.workers, app_spec="bench.gate_app:app",
                              profile=args.profile) as (host, port, pid):
            cpu = _common.CpuMeter(pid, args.db)
            for path, headers, body in routes.values():  # warm up every worker
                hammer(host, port, path, headers, body, 1.0, args.clients, Run(), cpu, keys)
            for _ in range(args.rounds):
                for mode, extra in modes.items():
                    for name, (path, headers, body) in routes.items():
                        hammer(host, port, path, {**headers, **extra}, body, args.seconds,
                               args.clients, runs[(name, mode)], cpu, keys)

    print(f"# load average after: {_common.load_average()}")
    print(f"gunicorn {args.workers} workers (gunicorn.conf.py: gthread, keep-alive), "
          f"{args.clients} client processes as {args.accounts} customer(s), {args.rounds} rounds "
          f"x {args.seconds:g} s per route and connection mode")
    rates: dict[tuple[str, str], float] = {}
    for (name, mode), run in runs.items():
        n = len(run.latencies)
        rates[(name, mode)] = n / run.wall
        ms = [x * 1000 for x in run.latencies]
        label = f"{name} {mode}"
        print(f"{label:20s}: {rates[(name, mode)]:8,.0f} req/s  p50 {statistics.median(ms):6.2f} ms  "
              f"p99 {_common.percentile(ms, 99):6.2f} ms  ({n:,} ok, {run.errors} failed)")
        print(f"{'':20s}  CPU per request: gunicorn {run.server_cpu / n * 1000:.2f} ms, PostgreSQL "
              f"{run.db_cpu / n * 1000:.2f} ms, clients {run.client_cpu / n * 1000:.2f} ms "
              f"(of {os.cpu_count() * run.wall / n * 1000:.2f} ms the cores had)")
    for mode in modes:
        p99 = _common.percentile(runs[("authorize", mode)].latencies, 99) * 1000
        print(f"{mode:10s}: floor/bare {rates[('floor', mode)] / rates[('bare', mode)]:.2f}, "
              f"authorize/bare {rates[('authorize', mode)] / rates[('bare', mode)]:.2f}, "
              f"authorize/floor {rates[('authorize', mode)] / rates[('floor', mode)]:.2f}; "
              f"authorize p99 {p99:.2f} ms (target < 20 ms: {'met' if p99 < 20 else 'missed'})")
    for mode in modes:
        print(f"{mode:10s}: authorize/floor-wsgi "
              f"{rates[('authorize', mode)] / rates[('floor-wsgi', mode)]:.2f} (the gate is served "
              "in front of Flask; floor-wsgi does the floor's work there too)")
    ratio = rates[("authorize", "close")] / rates[("floor", "close")]
    kept = rates[("authorize", "keep-alive")] / rates[("floor", "keep-alive")]
    print(f"authorize/floor: {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'missed'}; "
          f"with keep-alive: {kept:.2f})")


if __name__ == "__main__":
    main()
