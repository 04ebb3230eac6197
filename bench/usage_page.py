"""Server time of the usage page (GET /usage) and GET /v1/billing/usage for an account
with a year of history.

    .venv/bin/python bench/usage_page.py [--events 10000000] [--no-raw] [--requests 60]

The history is made in PostgreSQL, not through HTTP: `--events` events (default 10
million) spread evenly over the last 365 days, half api_call, half llm_completion (with
properties.tokens), plus one storage_usage reading per hour. From the same formula SQL
writes what ingestion would have written: usage_rollups per local hour and meter,
usage_counters per local month and all-time. With raw events on (the default) the
events themselves go into usage_events too (10 million rows take a minute or two; the
script prints how long). The account's time zone is --tz (a zone whose offsets are whole
hours, so that local hours are UTC hours).

Then the app runs in this process against that database (Redis rate limits as in
production) and the Flask test client times each request: the logged-in usage page,
then the JSON summary with an API key. Printed: median, p95 and more, in ms.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from datetime import timedelta

import _common

# One formula for every event: number i of N, at start + (i + 0.5) * span / N.
EVENTS_SQL = """
    SELECT i,
           %(start)s::timestamptz + %(span)s::interval * ((i + 0.5) / %(n)s)::float8 AS ts,
           CASE WHEN i %% 2 = 0 THEN 'api_call' ELSE 'llm_completion' END AS event_name,
           CASE WHEN i %% 2 = 0 THEN 1 ELSE 1 + (i * 7919) %% 2000 END AS value
    FROM generate_series(0::bigint, %(n)s - 1) AS i
"""
# One storage reading per hour, a minute before the hour ends.
STORAGE_SQL = """
    SELECT h, %(start)s::timestamptz + h * interval '1 hour' + interval '59 minutes' AS ts,
           1000000000 + h * 1000 AS value
    FROM generate_series(0, %(hours)s - 1) AS h
"""


def make_history(db_url: str, account_id: str, tz: str, n_events: int, raw: bool) -> None:
    import psycopg

    with psycopg.connect(db_url) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("UPDATE accounts SET time_zone = %s WHERE id = %s", (tz, account_id))
        meters = dict(conn.execute("SELECT event_name, id FROM meters").fetchall())
        end = conn.execute("SELECT date_trunc('hour', now()) + interval '1 hour'").fetchone()[0]
        hours = 365 * 24
        params = {"start": end - timedelta(hours=hours),
                  "span": f"{hours} hours", "n": n_events, "hours": hours,
                  "acct": account_id, "tz": tz, "api": meters["api_call"],
                  "llm": meters["llm_completion"], "storage": meters["storage_usage"]}

        started = time.perf_counter()
        conn.execute(f"""
            INSERT INTO usage_rollups (account_id, meter_id, bucket_start, value, events, latest_at)
            SELECT %(acct)s, CASE WHEN event_name = 'api_call' THEN %(api)s ELSE %(llm)s END,
                   date_trunc('hour', ts), sum(value), count(*), NULL
            FROM ({EVENTS_SQL}) AS e GROUP BY 2, 3""", params)
        conn.execute(f"""
            INSERT INTO usage_rollups (account_id, meter_id, bucket_start, value, events, latest_at)
            SELECT %(acct)s, %(storage)s, date_trunc('hour', ts), value, 1, ts
            FROM ({STORAGE_SQL}) AS s""", params)
        month = "(date_trunc('month', bucket_start AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s)"
        conn.execute(f"""
            INSERT INTO usage_counters (account_id, meter_id, period_start, value, latest_at)
            SELECT account_id, meter_id, {month}, sum(value), NULL::timestamptz FROM usage_rollups
            WHERE account_id = %(acct)s AND meter_id IN (%(api)s, %(llm)s) GROUP BY 1, 2, 3
            UNION ALL
            SELECT account_id, meter_id, '1970-01-01T00:00:00Z', sum(value), NULL FROM usage_rollups
            WHERE account_id = %(acct)s AND meter_id IN (%(api)s, %(llm)s) GROUP BY 1, 2
            UNION ALL
            (SELECT DISTINCT ON ({month}) account_id, meter_id, {month}, value, latest_at
             FROM usage_rollups WHERE account_id = %(acct)s AND meter_id = %(storage)s
             ORDER BY {month}, latest_at DESC)""", params)
        conn.commit()
        print(f"# pre-aggregates for {n_events:,} events + {hours:,} storage readings: "
              f"{time.perf_counter() - started:.1f} s")

        if raw:
            started = time.perf_counter()
            # A partition per month of the year (received_at = the event's time), then the
            # ids without their key and index, built once after: faster than row by row.
            from models.usage import add_months, event_partition_ddl, month_start
            month = month_start(params["start"])
            while month < end:
                conn.execute(event_partition_ddl(month))
                month = add_months(month, 1)
            conn.execute(f"""
                INSERT INTO usage_events (account_id, event_id, event_name, timestamp, properties,
                                          received_at)
                SELECT %(acct)s, 'hist_' || i, event_name, ts,
                       CASE WHEN event_name = 'api_call' THEN '{{}}'::json
                            ELSE json_build_object('tokens', value) END, ts
                FROM ({EVENTS_SQL}) AS e""", params)
            conn.execute(f"""
                INSERT INTO usage_events (account_id, event_id, event_name, timestamp, properties,
                                          received_at)
                SELECT %(acct)s, 'hist_storage_' || h, 'storage_usage', ts,
                       json_build_object('bytes', value), ts
                FROM ({STORAGE_SQL}) AS s""", params)
            conn.execute("ALTER TABLE usage_event_ids DROP CONSTRAINT usage_event_ids_pkey")
            conn.execute("DROP INDEX ix_usage_event_ids_received_at")
            conn.execute("INSERT INTO usage_event_ids (account_id, event_id, received_at) "
                         "SELECT account_id, event_id, received_at FROM usage_events")
            conn.execute("ALTER TABLE usage_event_ids ADD PRIMARY KEY (account_id, event_id)")
            conn.execute("CREATE INDEX ix_usage_event_ids_received_at "
                         "ON usage_event_ids (received_at)")
            conn.commit()
            print(f"# raw usage_events: {n_events + hours:,} rows in "
                  f"{time.perf_counter() - started:.1f} s")
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        sizes = [(table, conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                 for table in ("usage_events", "usage_rollups", "usage_counters")]
        print("# rows: " + ", ".join(f"{name} {rows:,}" for name, rows in sizes))


def timed(client, path: str, n: int, **kwargs) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path, **kwargs)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000,
                        help="events in the year of history")
    parser.add_argument("--no-raw", dest="raw", action="store_false",
                        help="pre-aggregates only, no rows in usage_events")
    parser.add_argument("--tz", default="Europe/Paris", help="account time zone (whole hours)")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per path")
    parser.add_argument("--db", default="bench", help="database to drop and recreate (not 'test')")
    args = parser.parse_args()

    print(f"# machine: {_common.machine()}")
    with _common.seeded_database(args.db) as (db_url, env, demo):
        os.environ.update(env)
        from app import create_app
        from extensions import db
        from services.usage import meters as meter_defs

        app = create_app()
        with app.app_context():
            meter_defs.all_meters()  # the default meters, as on first use
            db.session.remove()
        make_history(db_url, demo["account_id"], args.tz, args.events, args.raw)

        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        response = client.post("/login", data={"email": demo["email"],
                                               "password": demo["password"], "csrf_token": token})
        if response.status_code != 303:
            raise RuntimeError(f"login failed: {response.status_code}")
        key = {"X-Api-Key": demo["api_key"]}
        print(f"# load average: {_common.load_average()}")
        results = {}
        for label, path, kwargs in (("GET /usage", "/usage", {}),
                                    ("GET /v1/billing/usage", "/v1/billing/usage",
                                     {"headers": key})):
            timed(client, path, 5, **kwargs)  # warm up: caches, prepared statements
            results[label] = timed(client, path, args.requests, **kwargs)
        body = client.get("/v1/billing/usage", headers=key).get_json()
        print(f"# this month so far: {body['usage']}")

    for label, times in results.items():
        median = statistics.median(times) * 1000
        print(f"{label:22s} {_common.describe_ms(times)}  ({len(times)} requests; target median "
              f"< 50 ms: {'met' if median < 50 else 'missed'})")


if __name__ == "__main__":
    main()
