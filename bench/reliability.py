"""Run the chaos scenarios (tests/chaos) at a larger scale and write RELIABILITY.md.

    .venv/bin/python bench/reliability.py [--scale 5] [--db reliability] [--output RELIABILITY.md]

The scenarios are the chaos tests themselves, so the proof and the figures are one code
path: pytest runs `tests/chaos` on a fresh PostgreSQL database of this command's own
(never `test`) and Redis, with TALLY_CHAOS_SCALE multiplying each scenario's size, and each
scenario writes its figures to a folder this command reads. A failed assertion fails the
command, and the report then says so instead of "nothing lost".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import _common

# Each scenario: its title, what it does, and the figures to show (label, key).
SCENARIOS = [
    ("exactly_once_topups", "Exactly-once credit",
     "PaymentIntents created through `POST /v1/billing/payment-intents` and paid at "
     "localstripe; each then confirmed twice through `POST /v1/billing/confirm-payment` and "
     "delivered twice as a signed `payment_intent.succeeded` webhook, all at once and shuffled, "
     "then each replayed once more (localstripe delivers its own webhook too). Clients retry "
     "every failure as Stripe does (exponential backoff). One fault for every 20 requests: a "
     "gunicorn worker SIGKILLed, or `pg_terminate_backend` on every connection the app holds.",
     [("PaymentIntents", "payment_intents"), ("accounts", "accounts"),
      ("gunicorn workers", "gunicorn_workers"), ("amount credited (minor units)", "amount_total"),
      ("HTTP requests (retries included)", "requests"), ("retries", "retries"),
      ("answers lost to a killed worker (connection failed)", "connection_failures"),
      ("5xx answers (a dropped database connection)", "server_errors"),
      ("workers SIGKILLed", "workers_killed"), ("database connection drops", "database_drops"),
      ("database connections terminated", "database_connections_dropped"),
      ("**double credits**", "double_credits"), ("**missed credits**", "missed_credits"),
      ("ledger sum equals the cached balance, every account", "ledger_equals_balance")]),
    ("restart_safety", "Restart safety",
     "Batches of 200 usage events sent to `POST /v1/events` by 4 clients; three times, once "
     "half of a round is acknowledged, the whole server (master and workers) is SIGKILLed. "
     "After each crash, every acknowledged event must be stored and no batch half stored; the "
     "next round resends every unacknowledged batch and some acknowledged ones.",
     [("batches", "batches"), ("events", "events"), ("server crashes", "server_crashes"),
      ("gunicorn workers", "gunicorn_workers"), ("HTTP requests", "requests"),
      ("batches without an answer (connection failed)", "connection_failures"),
      ("of those, found stored (committed before the crash)", "unacknowledged_batches_found_stored"),
      ("acknowledged batches sent again", "acknowledged_batches_resent"),
      ("**batches half stored**", "half_stored_batches"),
      ("**acknowledged events lost**", "acknowledged_events_lost"),
      ("**events counted twice**", "events_counted_twice")]),
    ("concurrent_debits", "Concurrent debits",
     "50 clients call `POST /v1/authorize` for one account with a price plan (a price per "
     "API call) until each is refused; a watcher reads the credit available meanwhile.",
     [("clients", "clients"), ("gunicorn workers", "gunicorn_workers"),
      ("credit granted (minor units)", "credit"), ("price per call", "price_per_call"),
      ("HTTP requests", "requests"), ("calls allowed", "allowed"), ("402 refusals", "refused_402"),
      ("lowest credit available seen", "lowest_available_credit_seen"),
      ("credit left", "credit_left"), ("**times overdrawn**", "overdrawn"),
      ("**debits not matching metered usage**", "debits_not_matching_usage")]),
    ("auto_recharge", "Auto-recharge",
     "Accounts with a price per API call (0.20), a saved card and auto-recharge (below 20.00, "
     "add 20.00) spend through `POST /v1/authorize` from 24 clients on 4 workers, crossing their "
     "thresholds again and again; one fault for every 60 calls (a worker SIGKILLed, or every "
     "app connection terminated); localstripe delivers its own `payment_intent.succeeded` "
     "webhooks, racing each recharge's own credit. Then the outbox is drained and every charge "
     "at Stripe is matched against the ledger. A call refused with 402 found the credit spent "
     "while its account's recharge was in flight, or being retried after a fault hit it (a "
     "recharge's lease is 20 seconds and its retries start 2 seconds apart).",
     [("accounts", "accounts"), ("gunicorn workers", "gunicorn_workers"),
      ("clients", "clients"), ("gate calls", "gate_calls"), ("allowed", "allowed"),
      ("402 refusals (credit spent, recharge not yet landed)", "refused_402"),
      ("HTTP requests (retries included)", "requests"), ("retries", "retries"),
      ("workers SIGKILLed", "workers_killed"), ("database connection drops", "database_drops"),
      ("database connections terminated", "database_connections_dropped"),
      ("recharges charged at Stripe", "recharges_charged"),
      ("recharges credited", "recharges_credited"),
      ("**double charges**", "double_charges"), ("**missed credits**", "missed_credits"),
      ("**most recharges in flight for one account**", "max_in_flight_per_account")]),
    ("hostile_client", "A hostile client's disk cost",
     "A client with a key sends batches of 1,000 events no meter reads (1.9 KB of properties "
     "each) and batches of metered events with properties over the 4 KiB bound, every request "
     "with its own `Idempotency-Key`, then metered events with properties of exactly 4 KiB "
     "that do not compress; then it signs up again and again from one address and follows "
     "the link of every sign-up email it gets. The database "
     "(every table, its indexes and TOAST) is measured between the phases.",
     [("gunicorn workers", "gunicorn_workers"), ("junk events sent", "junk_events"),
      ("junk requests", "junk_requests"), ("junk bytes sent", "junk_bytes_sent"),
      ("**events stored for junk**", "events_stored_for_junk"),
      ("bytes the database grew by for junk (stored answers of at most 64 KiB)",
       "junk_bytes_stored"),
      ("metered events stored", "metered_events"), ("properties bound (bytes)", "properties_bound"),
      ("bytes on disk per metered event", "bytes_per_metered_event"),
      ("sign-ups tried from one address", "signups_attempted"),
      ("refused with 429", "signups_refused_429"), ("sign-ups allowed an hour", "signups_per_hour"),
      ("**accounts opened**", "accounts_opened")]),
    ("rate_limit_window", "Rate limits across workers",
     "6 clients call `POST /v1/authorize` as fast as they can for 70 seconds against 4 workers "
     "sharing Redis. For every requestsPerMinute + 1 calls allowed, the span from the first "
     "send to the last answer is measured; the tightest must be at least 60 seconds.",
     [("plan requestsPerMinute", "requests_per_minute"), ("gunicorn workers", "gunicorn_workers"),
      ("clients", "clients"), ("seconds", "seconds"), ("HTTP requests", "requests"),
      ("allowed", "allowed"), ("429 refusals", "refused_429"),
      ("tightest span of requestsPerMinute + 1 allowed calls (s)", "tightest_window_seconds"),
      ("**60-second windows over the limit**", "windows_over_the_limit")]),
]


# What the hostile-input, impersonation and credential tests prove on every `make test`
# (not figures of a run: each line is a test that fails if the promise breaks).
TRUST_SECTION = [
    "## Hostile input, impersonation and credentials",
    "",
    "Proven on every test run (`make test`); each test was seen to fail with its fix reverted.",
    "",
    "- **View as customer is read-only for every route** "
    "(`tests/test_impersonation_default_deny.py`): the app's url_map is walked, so a route "
    "added later is covered without being listed anywhere (a test adds one and sees it "
    "refused). Every route with a method other than GET, HEAD or OPTIONS, on every "
    "blueprint, is sent while a staff member without `impersonate_write` views as a "
    "customer who has a live Stripe subscription: each answers 403 "
    "`impersonation_read_only`, every database row and every object at the Stripe simulator "
    "is unchanged, and each refusal is in the audit log with both identities, method and "
    "path. Only Stop and Log out pass. With `impersonate_write`, billing actions run and are "
    "audited with the account's state before and after. Pages opened meanwhile are recorded "
    "however they are fetched (page, htmx, JSON, PDF), folded per path and minute.",
    "- **Credentials stay in their lane** (`tests/test_idempotency.py`): a usage key sending "
    "an account key's `Idempotency-Key` and body gets its own 403, never the stored client "
    "secret or portal URL; a usage key's 403 is never handed to the account key; the store "
    "is keyed per credential scope; a PaymentIntent's client secret is never in the store.",
    "- **Hostile input** (`tests/test_hostile_input.py`, `tests/test_ingest_bounds.py`, "
    "`tests/test_topups.py`, `tests/test_staff.py`): every `/v1` POST and DELETE, walked from "
    "the url_map, answers junk bodies with a 4xx in the error shape and stores nothing; bad "
    "amounts are 400s naming `amount`; bodies over the limit are 413s. Events no meter reads "
    "and properties over 4 KiB are rejected one by one and not stored; a signed webhook "
    "nested 100,000 deep (or with an id or type Tally cannot store) is a 400 that stores "
    "nothing; a staff adjustment of `+-5` or `--5` is refused; a 255-character "
    "`Idempotency-Key` still reaches Stripe within its 255-character limit.",
    "- **A wallet signature changes state once** (`tests/test_seed_lit.py`): four copies of "
    "one `X-Wallet-Auth` signature sent at once over real HTTP, on SQLite and PostgreSQL, "
    "create one PaymentIntent and three 401 `wallet_signature_replayed` (the message's EIP-712 "
    "digest is a primary key, committed before the request's work); a wrong domain, a stale "
    "or future `issuedAt`, a forged signature or an unlinked wallet is a 401 with its own code "
    "and runs nothing; eth-account's raised recursion limit is put back, so a body nested "
    "200,000 deep is a 400, not a crashed worker.",
    "- **A hostile client's disk cost** (`tests/chaos/test_chaos_hostile.py`, figures "
    "above): junk stores no event, a metered event costs at most its bound, sign-ups are "
    "throttled per address.",
    "- **Nobody is locked out** (`tests/test_security.py`, `tests/test_auth.py`): after 30 "
    "wrong passwords for the owner's email from 30 addresses (or from the owner's own "
    "address), a new browser is refused even with the right password, and the owner's own "
    "browser logs in; a known browser guessing is throttled per device. Sign-up answers the "
    "same page for a new and a taken email, creates nothing before the emailed link, and "
    "tells the real owner by email (a real SMTP server on loopback).",
    "- **Nothing kept where it should not be** (`tests/test_security.py`, "
    "`tests/test_staff.py`): pages and API answers carry `Cache-Control: no-store`; the "
    "customer's ledger and API show a staff note or a neutral text, never the internal "
    "reason.",
    "- **The audit log stays** (`tests/test_audit_role.py`, PostgreSQL): `TRUNCATE`, "
    "`UPDATE` and `DELETE` are refused by triggers (schema from the models and from the "
    "migrations); the app runs as a role that can only read and insert there, and "
    "`make serve` migrates as the owner and serves as that role.",
    "- **Slow clients** (`tests/test_slow_clients.py`): with twelve connections trickling "
    "their headers and never finishing, `make serve`'s 4 workers answer other requests, and "
    "none of the slow connections was dropped or answered meanwhile.",
    "",
]


def run_chaos(db_url: str, scale: float, figures: Path) -> tuple[int, str, float]:
    env = {**os.environ, "TEST_DATABASE_URL": db_url, "TEST_REDIS_URL": _common.REDIS_URL,
           "TALLY_CHAOS_SCALE": str(scale), "TALLY_CHAOS_FIGURES": str(figures)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-m", "chaos", "tests/chaos"], cwd=_common.REPO_ROOT, env=env,
                            capture_output=True, text=True)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    if result.returncode != 0:
        print(result.stdout[-20000:], result.stderr[-5000:], sep="\n")
    return result.returncode, summary, time.monotonic() - started


def render(figures: Path, scale: float, passed: bool, summary: str, seconds: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_common.REPO_ROOT,
                            capture_output=True, text=True).stdout.strip()
    lines = [
        "# Reliability",
        "",
        "What Tally lost under load, crashes and injected faults: "
        + ("**nothing**." if passed else "**the run FAILED; see below**."),
        "",
        "Produced by `.venv/bin/python bench/reliability.py` (this file is its output; do not "
        "edit it by hand). The scenarios are the chaos tests in `tests/chaos` "
        "(`pytest -m chaos`, PostgreSQL only), run here at "
        f"{scale:g}x the size `make test` runs them at, against real gunicorn workers on "
        "PostgreSQL and Redis, with Stripe played by localstripe. Every figure below is counted "
        "by the test that asserts the outcome: if anything had been lost, the run would have "
        "failed instead of writing these tables.",
        "",
        f"- run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{commit}`, "
        f"{seconds / 60:.1f} minutes, pytest: `{summary}`",
        f"- machine: {_common.machine()}; load average {_common.load_average()} at the end "
        "(other people's tests share these cores)",
        "",
    ]
    for name, title, how, rows in SCENARIOS:
        path = figures / f"{name}.json"
        lines += [f"## {title}", "", how, ""]
        if not path.exists():
            lines += ["No figures: the scenario did not finish.", ""]
            continue
        data = json.loads(path.read_text())
        lines += ["| | |", "|---|---|"]
        for label, key in rows:
            value = data.get(key)
            shown = "yes" if value is True else f"{value:,}" if isinstance(value, int) else value
            lines.append(f"| {label} | {shown} |")
        lines.append("")
    lines += [
        *TRUST_SECTION,
        "## Also proven on every test run",
        "",
        "- Key rotation across workers (`tests/test_multiworker.py`): after each of 5 rotations "
        "returns, 16 concurrent calls over 4 workers (and over 2 servers) see the old key "
        "refused and the new one accepted.",
        "- Security (`tests/test_security.py`, `tests/test_authorization_matrix.py`): CSP, "
        "HSTS, CSRF on every form route, sessions ended at logout and password change, API "
        "keys in no log record, and every object route as owner, other customer, staff and "
        "anonymous.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=5.0,
                        help="multiplies each scenario's size (tests run at 1)")
    parser.add_argument("--db", default="reliability", help="PostgreSQL database to recreate")
    parser.add_argument("--output", type=Path, default=_common.REPO_ROOT / "RELIABILITY.md")
    args = parser.parse_args()
    db_url = _common.fresh_database(args.db)
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp)
        code, summary, seconds = run_chaos(db_url, args.scale, figures)
        args.output.write_text(render(figures, args.scale, code == 0, summary, seconds))
    print(f"{summary}; wrote {args.output}")
    sys.exit(code)


if __name__ == "__main__":
    main()
