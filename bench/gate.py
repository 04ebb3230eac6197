"""Requests/s and latency of POST /v1/authorize against a bare Flask JSON route.

    .venv/bin/python bench/gate.py [--seconds 8] [--rounds 2] [--clients 4] [--workers 2]

One gunicorn (sync workers) serves bench/gate_app.py: the whole app (PostgreSQL, Redis
rate limits with a limit no bench reaches, plan limits large but set, so the gate's
conditional UPDATE runs) plus POST /bench/bare returning {"ok": true} and POST /bench/floor
(the least any gate must do: a key read, a Redis round trip and a durable INSERT, with the
raw drivers; see gate_app.py), which bounds the ratio any gate can reach. The same client
processes (http.client, pre-serialised bodies) hit each route in turn, for a fixed time,
alternating over rounds; latency is per request as the client sees it, connect included
(gunicorn's sync workers close the connection after each response).
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
           out: multiprocessing.Queue) -> None:
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
           clients: int, run: Run, cpu: _common.CpuMeter) -> None:
    """`clients` processes for `seconds`; adds to `run`."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(host, port, path, headers, body, seconds, out))
             for _ in range(clients)]
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
    parser.add_argument("--seconds", type=float, default=8.0, help="per route per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    _common.add_server_arguments(parser)
    args = parser.parse_args()

    _common.print_header()
    routes = {
        "bare": ("/bench/bare", {"Content-Type": "application/json"}, b"{}"),
        "floor": ("/bench/floor", {"Content-Type": "application/json"}, b"{}"),
        "authorize": ("/v1/authorize", {"Content-Type": "application/json"}, AUTHORIZE_BODY),
    }
    runs = {name: Run() for name in routes}
    with _common.seeded_database(args.db) as (_, env, demo):
        routes["authorize"][1]["X-Api-Key"] = routes["floor"][1]["X-Api-Key"] = demo["api_key"]
        with _common.gunicorn(env, workers=args.workers, app_spec="bench.gate_app:app",
                              profile=args.profile) as (host, port, pid):
            cpu = _common.CpuMeter(pid, args.db)
            for path, headers, body in routes.values():  # warm up every worker
                hammer(host, port, path, headers, body, 1.0, args.clients, Run(), cpu)
            for _ in range(args.rounds):
                for name, (path, headers, body) in routes.items():
                    hammer(host, port, path, headers, body, args.seconds, args.clients, runs[name],
                           cpu)

    print(f"# load average after: {_common.load_average()}")
    print(f"gunicorn {args.workers} sync workers, {args.clients} client processes, "
          f"{args.rounds} rounds x {args.seconds:g} s per route")
    rates = {}
    for name, run in runs.items():
        n = len(run.latencies)
        rates[name] = n / run.wall
        ms = [x * 1000 for x in run.latencies]
        print(f"{name:9s}: {rates[name]:8,.0f} req/s  p50 {statistics.median(ms):6.2f} ms  "
              f"p99 {_common.percentile(ms, 99):6.2f} ms  ({n:,} ok, {run.errors} failed)")
        print(f"{'':9s}  CPU per request: gunicorn {run.server_cpu / n * 1000:.2f} ms, PostgreSQL "
              f"{run.db_cpu / n * 1000:.2f} ms, clients {run.client_cpu / n * 1000:.2f} ms "
              f"(of {os.cpu_count() * run.wall / n * 1000:.2f} ms the cores had)")
    print(f"floor/bare: {rates['floor'] / rates['bare']:.2f} (the most any gate that reads the "
          "key, takes a rate-limit entry and records the call durably can reach here)")
    ratio = rates["authorize"] / rates["bare"]
    p99 = _common.percentile(runs["authorize"].latencies, 99) * 1000
    print(f"ratio authorize/bare: {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'missed'}); "
          f"authorize p99 {p99:.2f} ms (target < 20 ms: {'met' if p99 < 20 else 'missed'})")


if __name__ == "__main__":
    main()
