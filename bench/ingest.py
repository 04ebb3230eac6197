"""Events/s through POST /v1/events (gunicorn, PostgreSQL) against a plain COPY of the rows.

    .venv/bin/python bench/ingest.py [--events 300000] [--clients 4] [--workers 2]

Batches of 1,000 events; about 10% of each batch repeat ids sent in earlier batches (so
the server deduplicates them); event_name is a mix of api_call and llm_completion (with
properties.tokens); timestamps spread over the last 24 hours. Client threads send
pre-serialised bodies with http.client. Then the same unique rows are loaded with
psycopg's `cursor.copy` into a table shaped like usage_events (same columns) with the
dedupe key (account, event id) that recording keeps in usage_event_ids.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import _common


def make_batches(n_batches: int, batch: int, dup: float, clients: int, seed: int,
                 spread: timedelta) -> tuple[list[bytes], list[dict]]:
    """Pre-serialised bodies, and the unique events in the order first sent."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    bodies: list[bytes] = []
    unique: list[dict] = []
    # Duplicates come from batches sent well before (2 x clients earlier), which are
    # committed by then, as a client re-sending after a timeout would do.
    for b in range(n_batches):
        pool_end = len(unique) - 2 * clients * int(batch * (1 - dup))
        n_dup = int(batch * dup) if pool_end > batch else 0
        events = [unique[rng.randrange(pool_end)] for _ in range(n_dup)]
        for j in range(batch - n_dup):
            ts = (now - spread * rng.random()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if rng.random() < 0.5:
                event = {"id": f"evt_{seed}_{b}_{j}", "event_name": "api_call", "timestamp": ts,
                         "properties": {"endpoint": "/v1/search"}}
            else:
                event = {"id": f"evt_{seed}_{b}_{j}", "event_name": "llm_completion",
                         "timestamp": ts,
                         "properties": {"tokens": rng.randrange(1, 4000), "model": "small"}}
            unique.append(event)
            events.append(event)
        rng.shuffle(events)
        bodies.append(json.dumps({"events": events}, separators=(",", ":")).encode())
    return bodies, unique


def send_all(host: str, port: int, key: str, bodies: list[bytes], clients: int) -> dict:
    """Send every body once from `clients` threads; wall time and the server's counts."""
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": 0}
    latencies: list[float] = []
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}

    def unsent() -> Iterator[bytes]:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            yield bodies[i]

    def worker() -> None:
        for status, data, elapsed in _common.post_each(host, port, "/v1/events", headers, unsent(),
                                                       timeout=120):
            with lock:
                latencies.append(elapsed)
                if status == 200:
                    result = json.loads(data)
                    totals["accepted"] += result["accepted"]
                    totals["duplicates"] += result["duplicates"]
                    totals["rejected"] += len(result["rejected"])
                else:
                    totals["errors"] += 1
                    if totals["errors"] <= 3:
                        print(f"# HTTP {status}: {data[:300]!r}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals["seconds"] = time.perf_counter() - started
    totals["latencies"] = latencies
    return totals


def copy_rows(db_url: str, account_id: str, unique: list[dict], foreign_key: bool,
              runs: int = 2) -> tuple[float, int, float]:
    """COPY the unique rows into usage_events_copy (LIKE usage_events: same columns and
    defaults, plus the dedupe key (account, event id), which recording keeps in
    usage_event_ids; with `foreign_key`, also usage_events' foreign key to accounts); best of
    `runs`, each into a fresh table, in one COPY and one transaction. Returns seconds, rows
    and the CPU seconds (client and backend) of the best run."""
    import psycopg

    now = datetime.now(UTC)
    rows = [(account_id, e["id"], e["event_name"],
             datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")),
             json.dumps(e["properties"]), now) for e in unique]
    best, best_cpu = float("inf"), 0.0
    with psycopg.connect(db_url) as conn:
        backend = [conn.info.backend_pid]
        for _ in range(runs):
            conn.execute("DROP TABLE IF EXISTS usage_events_copy")
            conn.execute("CREATE TABLE usage_events_copy (LIKE usage_events INCLUDING ALL, "
                         "UNIQUE (account_id, event_id))")
            if foreign_key:
                conn.execute("ALTER TABLE usage_events_copy ADD FOREIGN KEY (account_id) "
                             "REFERENCES accounts (id)")
            conn.commit()
            cpu = _common.cpu_seconds(backend) + time.process_time()
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy(
                    "COPY usage_events_copy (account_id, event_id, event_name, timestamp,"
                    " properties, received_at) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            if time.perf_counter() - started < best:
                best = time.perf_counter() - started
                best_cpu = _common.cpu_seconds(backend) + time.process_time() - cpu
            count = conn.execute("SELECT count(*) FROM usage_events_copy").fetchone()[0]
        conn.execute("DROP TABLE usage_events_copy")
        conn.commit()
    return best, count, best_cpu


def prefill(db_url: str, n: int) -> None:
    """`n` stored events of 10,000 other accounts over the last 30 days, made in SQL (with
    their ids, whose key and index are built once, after the rows), then analysed."""
    import time

    import psycopg

    started = time.perf_counter()
    with psycopg.connect(db_url) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        customer = conn.execute("SELECT customer_id FROM accounts LIMIT 1").fetchone()[0]
        conn.execute("""INSERT INTO accounts (id, customer_id, name, tier, currency, balance,
                        created_at, time_zone, alert_thresholds, pending_usage)
                        SELECT 'acct_pre' || a, %s, 'Other', 'free', 'usd', 0, now(), 'UTC',
                               '[80, 100]', 0 FROM generate_series(1, 10000) AS a""",
                     (customer,))
        conn.execute("""INSERT INTO usage_events (account_id, event_id, event_name, timestamp,
                        properties, received_at)
                        SELECT 'acct_pre' || (1 + i %% 10000), 'pre_' || i, 'api_call',
                               now() - interval '30 days' * (i::float8 / %s), '{}'::json, now()
                        FROM generate_series(1::bigint, %s) AS i""", (n, n))
        conn.execute("ALTER TABLE usage_event_ids DROP CONSTRAINT usage_event_ids_pkey")
        conn.execute("DROP INDEX ix_usage_event_ids_received_at")
        conn.execute("""INSERT INTO usage_event_ids (account_id, event_id, received_at)
                        SELECT account_id, event_id, received_at FROM usage_events""")
        conn.execute("ALTER TABLE usage_event_ids ADD PRIMARY KEY (account_id, event_id)")
        conn.execute("CREATE INDEX ix_usage_event_ids_received_at ON usage_event_ids (received_at)")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE usage_events")
        conn.execute("VACUUM ANALYZE usage_event_ids")
    print(f"# prefilled usage_events with {n:,} rows in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="events sent (incl. duplicates)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dup", type=float, default=0.10, help="share of ids repeated per batch")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--warmup", type=int, default=8, help="batches sent before timing")
    parser.add_argument("--existing-events", type=int, default=0,
                        help="usage_events rows already stored (10,000 other accounts, last 30 "
                             "days) before timing: does ingestion slow down as the table grows?")
    parser.add_argument("--no-copy", dest="copy", action="store_false", help="skip the COPY baseline")
    _common.add_server_arguments(parser)
    args = parser.parse_args()

    _common.print_header()
    n_batches = max(1, args.events // args.batch)
    print(f"# building {args.warmup} + {n_batches} batches of {args.batch} events ...")
    warm, _ = make_batches(args.warmup, args.batch, 0.0, args.clients, 1, timedelta(hours=24))
    bodies, unique = make_batches(n_batches, args.batch, args.dup, args.clients, 2,
                                  timedelta(hours=24))
    print(f"# {len(bodies)} bodies, {sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB each, "
          f"{len(unique):,} unique events")

    with _common.seeded_database(args.db) as (db_url, env, demo):
        if args.existing_events:
            prefill(db_url, args.existing_events)
        with _common.gunicorn(env, workers=args.workers, profile=args.profile) as (host, port, pid):
            send_all(host, port, demo["api_key"], warm, args.clients)
            cpu = _common.CpuMeter(pid, args.db)
            cpu.start()
            result = send_all(host, port, demo["api_key"], bodies, args.clients)
            server_cpu, db_cpu, client_cpu = cpu.stop()

    sent = len(bodies) * args.batch
    processed = result["accepted"] + result["duplicates"] + result["rejected"]
    rate = processed / result["seconds"]
    print(f"http: {sent:,} events in {len(bodies)} requests, {result['seconds']:.2f} s, "
          f"{args.clients} client threads, gunicorn {args.workers} sync workers")
    per = 1000 / processed * 1000
    print(f"http: CPU per 1,000 events: gunicorn {server_cpu * per:.1f} ms, PostgreSQL "
          f"{db_cpu * per:.1f} ms, client {client_cpu * per:.1f} ms (of "
          f"{os.cpu_count() * per * result['seconds']:.1f} ms the {os.cpu_count()} cores had)")
    print(f"http: accepted {result['accepted']:,}, duplicates {result['duplicates']:,}, "
          f"rejected {result['rejected']:,}, failed requests {result['errors']}")
    print(f"http: request latency {_common.describe_ms(result['latencies'])}")
    print(f"http: {rate:,.0f} events/s processed ({result['accepted'] / result['seconds']:,.0f} "
          "new events/s)")

    print(f"# load average after http: {_common.load_average()}")
    target = "met" if rate >= 20_000 else "missed"
    print(f"http target >= 20,000 events/s: {target}")
    for foreign_key in (False, True) if args.copy else ():
        seconds, copied, copy_cpu = copy_rows(db_url, demo["account_id"], unique, foreign_key)
        copy_rate = copied / seconds
        shape = ("LIKE usage_events + dedupe key + its foreign key to accounts" if foreign_key
                 else "LIKE usage_events: columns, defaults, + dedupe key (account, event id)")
        print(f"copy ({shape}): {copied:,} rows in {seconds:.2f} s, {copy_rate:,.0f} rows/s, "
              f"CPU {copy_cpu / copied * 1e6:.1f} ms per 1,000 rows (client and backend)")
        ratio = rate / copy_rate
        print(f"ratio http/copy ({'with' if foreign_key else 'without'} foreign key): {ratio:.2f} "
              f"(target >= 0.3: {'met' if ratio >= 0.3 else 'missed'})")


if __name__ == "__main__":
    main()
