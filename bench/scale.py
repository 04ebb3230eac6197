"""Tally with a million customers: staff search, the customer page, the audit log and its
export, customer pages and /v1 lists, and the nightly jobs, each against its target.

    nice .venv/bin/python bench/scale.py [--customers 1000000] [--db bench_scale] [--rebuild]

The data is made in PostgreSQL by set-based SQL (bench/scale_data.py): by default
1,000,000 customers with a user and an account each, 10,000,000 ledger entries, 5,000,000
audit events, 20,000,000 usage events with their rollups and 200,000 invoices. `--customers N`
scales every table in proportion (or set each with --ledger, --audit, --events, ...). The
build is recorded in the database and reused by the next run with the same sizes (it takes
about 15 minutes at the full size on two cores); `--rebuild` makes it again. Each run
migrates the database first (`flask db upgrade`), so new indexes are built on the old data.

The app then runs in this process (the Flask test client, Redis rate limits as in
production) and every figure is server time as the client sees it: median and p95 in ms
against the issue's target, `ok` or `MISSED`. Nothing is asserted. The nightly jobs run last
(`--no-jobs` to skip): they change the data (post grants and usage, purge keys), so a second
run finds less to do; `--rebuild` restores it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

import _common
import scale_data
from scale_data import Sizes


def build(args: argparse.Namespace, sizes: Sizes, env: dict[str, str]) -> None:
    import psycopg

    db_url = _common.database_url(args.db)
    try:
        with psycopg.connect(db_url) as conn:
            stored = scale_data.stored_sizes(conn)
    except psycopg.OperationalError:
        stored = None
    if stored == sizes and not args.rebuild:
        print(f"# reusing the data in {args.db} ({_sizes_line(sizes)})")
        # A migration may build an index or backfill a table over the million rows.
        _common.flask_cli(env, "db", "upgrade", timeout=3600)
        return
    print(f"# building {args.db}: {_sizes_line(sizes)}")
    started = time.perf_counter()
    if not args.resume:
        _common.fresh_database(args.db)
        _common.flask_cli(env, "db", "upgrade")
        _common.flask_cli(env, "seed-demo")
    with psycopg.connect(db_url) as conn:
        scale_data.load(conn, sizes, log=lambda line: print(line, flush=True))
    print(f"# built in {time.perf_counter() - started:.0f} s")


def _sizes_line(sizes: Sizes) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in asdict(sizes).items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = Sizes()
    parser.add_argument("--customers", type=int, default=defaults.customers)
    for f in fields(Sizes):
        if f.name != "customers":
            parser.add_argument(f"--{f.name}", type=int, default=None,
                                help=f"default {getattr(defaults, f.name):,} per million customers")
    parser.add_argument("--db", default="bench_scale", help="database (not 'test')")
    parser.add_argument("--rebuild", action="store_true", help="make the data again")
    parser.add_argument("--resume", action="store_true",
                        help="finish a build that stopped, keeping the tables it made")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--no-jobs", dest="jobs", action="store_false", help="skip the nightly jobs")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per figure")
    parser.add_argument("--export-rows", type=int, default=500_000,
                        help="stop reading the audit CSV export after this many rows")
    args = parser.parse_args()
    sizes = defaults.scaled(args.customers)
    sizes = Sizes(**{**asdict(sizes), **{k: v for k, v in vars(args).items()
                                        if k in asdict(sizes) and k != "customers" and v}})

    _common.print_header()
    with tempfile.TemporaryDirectory() as tmp:
        env = _common.bench_env(_common.database_url(args.db), Path(tmp))
        build(args, sizes, env)
        if args.build_only:
            return
        import scale_measure

        scale_measure.run(args, sizes, env)
    print(f"# load average after: {_common.load_average()}")


if __name__ == "__main__":
    main()
