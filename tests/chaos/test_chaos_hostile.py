"""A hostile client's disk cost is bounded: against gunicorn workers on PostgreSQL, a client
with a key sends what it can (junk event names, oversized properties, every request with
its own Idempotency-Key) and signs up as often as it can from one address.

Junk stores no event: what it can cost is the answer kept for its Idempotency-Key, at
most 64 KiB a request for a day (services/idempotency.MAX_STORED_BODY; a larger answer is
not kept at all). What a meter reads costs at most its properties bound
(TALLY_MAX_EVENT_PROPERTIES_BYTES, 4 KiB) plus a row's overhead per event, and the
accounts it can open are bounded per address (TALLY_SIGNUP_LIMIT).
"""

from __future__ import annotations

import base64
import email
import email.policy
import http.cookiejar
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from services.idempotency import MAX_STORED_BODY
from tests.support.chaos import scaled, send, write_figures
from tests.support.servers import gunicorn_server

pytestmark = pytest.mark.chaos

WORKERS = 4
CLIENTS = 4
PROPERTIES_BOUND = 4096
# What PostgreSQL spends on an event: its properties, stored out of line (TOAST) in chunks
# of about 2 KB, four to a page, so a 4 KiB value takes up to twice its size; and the row
# itself (header, ids, name, times, its share of a page, its index entries).
TOAST_FACTOR = 2
ROW_OVERHEAD = 1024
# Pages a table may gain without any new row (autovacuum's free space and visibility maps).
SLACK = 256 * 1024
SIGNUPS_PER_HOUR = 5


def database_bytes(database_url: str) -> int:
    """Every table of the app, with its indexes and TOAST data."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return int(conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchone()[0])


def count_rows(database_url: str, table: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def noise(n: int, size: int) -> str:
    """`size` characters that do not compress (PostgreSQL compresses large values)."""
    return base64.b64encode(os.urandom(size))[:size].decode() + str(n)[:0]


def properties(n: int, size: int) -> dict[str, str]:
    """Properties whose compact JSON is exactly `size` bytes."""
    return {"blob": noise(n, size - len('{"blob":""}'))}


def post_batches(url: str, key: str, batches: list[list[dict]], tag: str) -> list[dict]:
    """Send each batch once, CLIENTS at a time, each with its own Idempotency-Key."""

    def post(n: int) -> dict:
        status, answer = send("POST", url + "/v1/events", json.dumps({"events": batches[n]}).encode(),
                              {"X-Api-Key": key, "Idempotency-Key": f"{tag}-{n}"})
        assert status == 200, (status, answer)
        return answer

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(post, range(len(batches))))


def browser() -> tuple[urllib.request.OpenerDirector, Callable[[str], str]]:
    """A cookie-keeping client, and a function that reads a page's CSRF token."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def token(url: str) -> str:
        page = opener.open(url, timeout=30).read().decode()
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    return opener, token


def post_form(opener: urllib.request.OpenerDirector, url: str, fields: dict[str, str]) -> int:
    try:
        with opener.open(url, data=urllib.parse.urlencode(fields).encode(), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def sign_up(url: str, n: int) -> int:
    """One sign-up through the form, as a browser would (cookie, CSRF token)."""
    opener, token = browser()
    return post_form(opener, url + "/signup", {
        "name": f"Hostile {n}", "email": f"hostile{n}@example.com",
        "password": "hostile-password-1", "csrf_token": token(url + "/signup")})


def confirm_every_link(outbox: Path, expected: int) -> list[int]:
    """Follow the link of every sign-up email in the outbox folder, as their recipient
    would, once the `expected` emails are there (the workers send them after the commit)."""
    deadline = time.monotonic() + 60
    while len(list(outbox.glob("*.eml"))) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    statuses = []
    for eml in sorted(outbox.glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        link = re.search(r"https?://\S+/signup/confirm\?token=\S+",
                         message.get_body(("plain",)).get_content()).group(0)
        opener, token = browser()
        statuses.append(post_form(opener, link.split("?")[0], {
            "token": urllib.parse.unquote(link.split("token=")[1]), "csrf_token": token(link)}))
    return statuses


def test_a_hostile_clients_disk_cost_is_bounded(app, backend, deployment, customer, tmp_path):
    outbox = tmp_path / "outbox"
    env = {**deployment.env, "TALLY_SIGNUP_LIMIT": f"{SIGNUPS_PER_HOUR}/hour",
           "SMTP_URL": f"file://{outbox}"}
    url_db = deployment.database_url
    junk_batches = [[{"id": f"junk-{b}-{i}", "event_name": f"page_view_{i % 7}",
                      "properties": properties(i, 1900)} for i in range(1000)]
                    for b in range(scaled(6))]
    oversized = [[{"id": f"big-{b}-{i}", "event_name": "api_call",
                   "properties": properties(i, PROPERTIES_BOUND + 1 + i)} for i in range(300)]
                 for b in range(scaled(4))]
    metered = [[{"id": f"ok-{b}-{i}", "event_name": "api_call",
                 "properties": properties(i, PROPERTIES_BOUND)} for i in range(400)]
               for b in range(scaled(5))]
    with gunicorn_server(env, workers=WORKERS) as server:
        start = database_bytes(url_db)
        answers = post_batches(server.url, customer.api_key, junk_batches, "junk")
        answers += post_batches(server.url, customer.api_key, oversized, "big")
        after_junk = database_bytes(url_db)
        codes = {r["code"] for a in answers for r in a["rejected"]}
        rejected = sum(len(a["rejected"]) for a in answers)
        assert codes == {"unknown_event_name", "properties_too_large"}
        assert rejected == sum(map(len, junk_batches + oversized))
        assert all(a["accepted"] == 0 for a in answers)
        assert count_rows(url_db, "usage_events") == 0
        # The junk batches' answers (100 KB each) are not kept; the oversized ones' are.
        assert count_rows(url_db, "idempotency_keys") == len(oversized)
        assert after_junk - start <= len(answers) * MAX_STORED_BODY + SLACK, after_junk - start

        accepted = sum(a["accepted"] for a in post_batches(
            server.url, customer.api_key, metered, "ok"))
        after_metered = database_bytes(url_db)
        assert accepted == sum(map(len, metered)) == count_rows(url_db, "usage_events")
        per_event = (after_metered - after_junk) / accepted
        bound = TOAST_FACTOR * PROPERTIES_BOUND + ROW_OVERHEAD
        assert after_metered - after_junk <= accepted * bound + SLACK

        customers_before = count_rows(url_db, "customers")
        statuses = [sign_up(server.url, n) for n in range(scaled(4) * SIGNUPS_PER_HOUR)]
        assert statuses == [200] * SIGNUPS_PER_HOUR + [429] * (len(statuses) - SIGNUPS_PER_HOUR)
        assert count_rows(url_db, "customers") == customers_before  # nothing before the link
        assert confirm_every_link(outbox, SIGNUPS_PER_HOUR) == [200] * SIGNUPS_PER_HOUR
        opened = count_rows(url_db, "customers") - customers_before
        assert opened == SIGNUPS_PER_HOUR

    sent = sum(len(json.dumps({"events": b})) for b in junk_batches + oversized)
    write_figures("hostile_client", {
        "gunicorn_workers": WORKERS,
        "junk_events": rejected, "junk_bytes_sent": sent,
        "junk_bytes_stored": after_junk - start, "junk_requests": len(answers),
        "events_stored_for_junk": 0,
        "metered_events": accepted, "properties_bound": PROPERTIES_BOUND,
        "bytes_per_metered_event": round(per_event),
        "signups_attempted": len(statuses), "signups_refused_429": statuses.count(429),
        "accounts_opened": opened, "signups_per_hour": SIGNUPS_PER_HOUR,
    })
