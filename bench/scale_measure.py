"""The figures of `bench/scale.py`, measured in this process with the Flask test client
against the built database (see bench/scale.py for how to run it)."""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import _common
import scale_data
from scale_data import Sizes

# Search as you type: each keystroke of a few terms, plus pasted ids and whole emails.
TYPED = ("smith", "globex", "olivia.kim", "harbor data", "partner", "4821", "ja")
CSV_ROW = re.compile(rb"\n")


def keystrokes(term: str) -> list[str]:
    return [term[:n] for n in range(1, len(term) + 1)]


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, env: dict[str, str]) -> None:
        self.args, self.sizes, self.env = args, sizes, env
        self.results: list[tuple[str, str, bool | None]] = []

    def report(self, name: str, values: list[float], target_ms: float | None,
               p95_target_ms: float | None = None) -> None:
        ms = [v * 1000 for v in values]
        median, p95 = statistics.median(ms), _common.percentile(ms, 95)
        ok = None if target_ms is None else median < target_ms and (
            p95_target_ms is None or p95 < p95_target_ms)
        target = "" if target_ms is None else f"  target median < {target_ms:g} ms" + (
            f", p95 < {p95_target_ms:g} ms" if p95_target_ms else "")
        verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
        line = (f"{name:<46} median {median:8.1f} ms  p95 {p95:8.1f} ms  (n={len(ms)}){target}"
                f"{verdict}")
        print(line, flush=True)
        self.results.append((name, line, ok))

    def timed(self, client, path: str, n: int | None = None, **kwargs) -> list[float]:
        times = []
        for _ in range(n or self.args.requests):
            started = time.perf_counter()
            response = client.get(path, **kwargs)
            response.get_data()
            times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} "
                                   f"{response.get_data(as_text=True)[:300]}")
        return times


def prepare(conn, sizes: Sizes) -> dict[str, str]:
    """The logins and ids the figures need: a staff user, one big account (customer 1: a
    year of hourly usage rollups and 100 ledger entries a day), a middle customer."""
    big_acct = scale_data.hid_py("acct", 1)
    done = {n for (n,) in conn.execute("SELECT name FROM bench_scale_steps")}
    if "big account" not in done:
        started = time.perf_counter()
        meters = dict(conn.execute("SELECT event_name, id FROM meters").fetchall())
        conn.execute("ALTER TABLE ledger_entries DISABLE TRIGGER ALL")
        conn.execute(f"""
            INSERT INTO ledger_entries (account_id, amount, currency, kind, source, source_id,
                                        description, created_at, meta)
            SELECT '{big_acct}', -1, 'usd', 'usage', 'bench', 'big:' || i, 'API calls usage',
                   now() - (36500 - i) * interval '864 seconds', '{{}}'::json
            FROM generate_series(1, 36500) AS i""")
        conn.execute("ALTER TABLE ledger_entries ENABLE TRIGGER ALL")
        conn.execute(f"UPDATE accounts SET balance = balance - 36500 WHERE id = '{big_acct}'")
        conn.execute(f"""
            INSERT INTO usage_rollups (account_id, meter_id, bucket_start, value, events, latest_at)
            SELECT '{big_acct}', m, date_trunc('hour', now()) - h * interval '1 hour', 100 + h % 50,
                   100 + h % 50, NULL
            FROM generate_series(1, 8760) AS h, unnest(ARRAY['{meters["api_call"]}',
                                                             '{meters["llm_completion"]}']) AS m
            ON CONFLICT DO NOTHING""")
        conn.execute("INSERT INTO bench_scale_steps VALUES ('big account')")
        conn.commit()
        print(f"# big account: {time.perf_counter() - started:.1f} s", flush=True)
    # Since members, a login works in a customer it is a member of: user 1 owns customer 1.
    conn.execute("""INSERT INTO memberships (id, customer_id, user_id, role, created_at)
                    SELECT 'mem_bench_1', %s, %s, 'owner', now()
                    ON CONFLICT DO NOTHING""",
                 (scale_data.hid_py("cust", 1), scale_data.hid_py("usr", 1)))
    conn.execute("""UPDATE users SET password_hash = (SELECT password_hash FROM users
                    WHERE email = 'demo@tally.test') WHERE id = %s""",
                 (scale_data.hid_py("usr", 1),))
    conn.commit()
    email = conn.execute("SELECT email FROM users WHERE id = %s",
                         (scale_data.hid_py("usr", 1),)).fetchone()[0]
    middle = sizes.customers // 2
    return {"big_email": email, "big_account": big_acct, "big_customer": scale_data.hid_py("cust", 1),
            "middle_customer": scale_data.hid_py("cust", middle),
            "middle_account": scale_data.hid_py("acct", middle),
            "staff_id": scale_data.hid_py("usr", -3)}


def login(client, email: str, password: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token})
    if response.status_code != 303:
        raise RuntimeError(f"login {email}: {response.status_code}")


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(args: argparse.Namespace, sizes: Sizes, env: dict[str, str]) -> None:
    import psycopg

    db_url = _common.database_url(args.db)
    with psycopg.connect(db_url) as conn:
        ids = prepare(conn, sizes)
        rows = {t: conn.execute(f"SELECT reltuples::bigint FROM pg_class WHERE relname = '{t}'")
                .fetchone()[0] for t in ("customers", "ledger_entries", "audit_events",
                                         "usage_events", "usage_rollups", "invoices")}
    print("# rows (estimates): " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    staff_email, staff_password = "bench-staff@tally.test", scale_data.STAFF_PASSWORD
    _common.flask_cli(env, "create-staff", "--email", staff_email, "--password", staff_password)
    os.environ.update(env)
    from app import create_app

    app = create_app()
    bench = Bench(args, sizes, env)
    staff = app.test_client()
    login(staff, staff_email, staff_password)
    customer = app.test_client()
    login(customer, ids["big_email"], "demo-password-123")
    with app.app_context():
        from services import uow
        from services.identity import keys

        with uow.unit():
            api_key = keys.issue_key(account=_account(ids["big_account"]), name="bench").plaintext
            staff_key = json.loads(_common.flask_cli(
                env, "create-staff", "--email", staff_email, "--password", staff_password
            ).strip().splitlines()[-1])["api_key"]

    print("\n## Staff")
    search(bench, staff, ids)
    pages = [f"/staff/customers/{ids['big_customer']}", f"/staff/customers/{ids['middle_customer']}"]
    bench.report("customer page (staff)", [t for p in pages for t in bench.timed(staff, p)], 100)
    audit_log(bench, staff, ids, db_url)
    audit_export(bench, staff)

    print("\n## Customer pages and /v1 lists (the big account: 36,500 ledger entries, a year of usage)")
    for path in ("/", "/activity", "/usage", "/billing/invoices", "/keys"):
        bench.report(f"GET {path}", bench.timed(customer, path), 50)
    deep = _deep_ledger_cursor(db_url, ids["big_account"])
    bench.report("GET /activity, a page 30,000 entries deep",
                 bench.timed(customer, f"/activity?starting_after={deep}"), 50)
    bearer = {"Authorization": f"Bearer {api_key}"}
    for path in ("/v1/billing/ledger?limit=100", f"/v1/billing/ledger?limit=100&starting_after={deep}",
                 "/v1/billing/invoices", "/v1/keys", "/v1/billing/usage"):
        bench.report(f"GET {path.split('&')[0]}{' (deep)' if '&' in path else ''}",
                     bench.timed(customer, path, headers=bearer), 50)
    staff_bearer = {"Authorization": f"Bearer {staff_key}"}
    for path in ("/v1/customers?limit=100", "/v1/customers?q=smith&limit=100",
                 f"/v1/customers/{ids['middle_customer']}/accounts"):
        bench.report(f"GET {path}", bench.timed(customer, path, headers=staff_bearer), 50)

    if args.jobs:
        print("\n## Nightly jobs (the CLI, as cron runs it)")
        jobs(env)
    missed = [name for name, _, ok in bench.results if ok is False]
    print(f"\n# {len(bench.results)} figures, {len(missed)} missed: {', '.join(missed) or '-'}")


def _account(account_id: str):
    from extensions import db
    from models import Account

    return db.session.get(Account, account_id)


def _deep_ledger_cursor(db_url: str, account_id: str) -> str:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return str(conn.execute(
            "SELECT id FROM ledger_entries WHERE account_id = %s ORDER BY created_at DESC, id DESC "
            "OFFSET 30000 LIMIT 1", (account_id,)).fetchone()[0])


def search(bench: Bench, staff, ids: dict[str, str]) -> None:
    mix = [q for term in TYPED for q in keystrokes(term)]
    mix += [ids["middle_customer"], ids["middle_customer"][:10], ids["middle_account"],
            ids["middle_account"][:12], "cus_" + scale_data.hid_py("x", 1)[2:8],
            ids["big_email"], ids["big_email"][:8], "nobody-matches-this"]
    headers = {"HX-Request": "true", "HX-Target": "results"}
    times = []
    slowest: list[tuple[float, str]] = []
    for _ in range(max(1, bench.args.requests // 10)):
        for q in mix:
            t = bench.timed(staff, "/staff/", 1, query_string={"q": q}, headers=headers)[0]
            times.append(t)
            slowest.append((t, q))
    bench.report(f"search as you type ({len(mix)} queries)", times, 50, 150)
    worst = sorted(slowest, reverse=True)[:5]
    print("#   slowest: " + ", ".join(f"{q!r} {t * 1000:.0f} ms" for t, q in worst))


def audit_log(bench: Bench, staff, ids: dict[str, str], db_url: str) -> None:
    import psycopg

    with psycopg.connect(db_url) as conn:
        low, high = conn.execute("SELECT min(id), max(id) FROM audit_events").fetchone()
        oldest_day = conn.execute("SELECT min(created_at)::date + 30 FROM audit_events").fetchone()[0]
    for name, path in (
            ("audit log, first page", "/staff/audit"),
            ("audit log, middle", f"/staff/audit?before={(low + high) // 2}"),
            ("audit log, last pages", f"/staff/audit?before={low + 60}"),
            ("audit log by staff, deep", f"/staff/audit?staff={ids['staff_id']}&before={low + 5000}"),
            ("audit log by customer", f"/staff/audit?customer={ids['middle_customer']}"),
            ("audit log by action, deep", f"/staff/audit?action=plan.change&before={low + 5000}"),
            ("audit log by dates (a month, a year ago)",
             f"/staff/audit?from={oldest_day}&to={oldest_day}"),
            ("audit log by action and dates", f"/staff/audit?action=grace.extend&to={oldest_day}")):
        bench.report(name, bench.timed(staff, path), 50)


def audit_export(bench: Bench, staff) -> None:
    limit = bench.args.export_rows
    before = rss_kb()
    peak = before
    started = time.perf_counter()
    response = staff.get("/staff/audit.csv", buffered=False)
    rows = 0
    for chunk in response.response:
        rows += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
        if rows % 50_000 < 600:
            peak = max(peak, rss_kb())
        if rows >= limit:
            break
    elapsed = time.perf_counter() - started
    response.close()
    print(f"{'audit CSV export (streamed)':<46} {rows:,} rows in {elapsed:.1f} s = "
          f"{rows / elapsed:,.0f} rows/s; memory {before / 1024:.0f} MiB before, peak "
          f"{peak / 1024:.0f} MiB (+{(peak - before) / 1024:.0f} MiB)", flush=True)


def jobs(env: dict[str, str]) -> None:
    for command in (["credit-grants"], ["close-period"], ["reconcile", "--days", "0"],
                    ["purge-idempotency-keys"], ["purge-usage-events"]):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *command],
                                cwd=_common.REPO_ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out = (result.stdout.strip().splitlines() or [""])[-1][:160]
        status = "" if result.returncode == 0 else f" FAILED: {result.stderr.strip()[-300:]}"
        print(f"{' '.join(command):<46} {elapsed:7.1f} s  peak memory of any job so far "
              f"{peak_mb:.0f} MiB  {out}{status}", flush=True)


