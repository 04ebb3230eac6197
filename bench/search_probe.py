"""Staff search alone on a built `bench/scale.py` database: the same mix of keystrokes,
timed in the service (no HTTP, no page), with each query's plan choice visible in the
slowest list. Quicker than the whole bench when only search changed.

    PYTHONPATH=. .venv/bin/python bench/search_probe.py --db bench_scale [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common
import scale_data
from scale_measure import TYPED, keystrokes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="bench_scale")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ.update(DATABASE_URL=_common.database_url(args.db), SECRET_KEY="probe")
    from app import create_app
    from extensions import db
    from services.staff import console, search

    middle = args.customers // 2
    cust, acct = scale_data.hid_py("cust", middle), scale_data.hid_py("acct", middle)
    mix = [q for term in TYPED for q in keystrokes(term)]
    mix += [cust, cust[:10], acct, acct[:12], "cus_" + scale_data.hid_py("x", 1)[2:8],
            "olivia.kim.1@example.com", "olivia.k", "nobody-matches-this"]
    app = create_app()
    with app.app_context():
        times: list[tuple[float, str]] = []
        for _ in range(args.rounds):
            for q in mix:
                started = time.perf_counter()
                search.search_customers(q)
                times.append((time.perf_counter() - started, q))
                db.session.rollback()
        ms = [t * 1000 for t, _ in times]
        print(f"search ({len(mix)} queries x {args.rounds}): median {statistics.median(ms):.1f} ms,"
              f" p95 {_common.percentile(ms, 95):.1f} ms")
        print("  slowest: " + ", ".join(f"{q!r} {t * 1000:.0f}" for t, q in sorted(times)[-6:]))
        api = []
        for _ in range(20):
            started = time.perf_counter()
            console.list_customers(q="smith", limit=100)
            api.append((time.perf_counter() - started) * 1000)
            db.session.rollback()
        print(f"list_customers(q='smith', limit=100): median {statistics.median(api):.1f} ms, "
              f"p95 {_common.percentile(api, 95):.1f} ms")


if __name__ == "__main__":
    main()
