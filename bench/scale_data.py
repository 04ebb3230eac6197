"""The data of `bench/scale.py`, made in PostgreSQL with set-based SQL (generate_series), not
the ORM: a million customers (each with one user and one account), ledger entries, audit
events, usage events with their rollups, invoices, scheduled credit grants, unposted usage
charges and stored idempotency keys for the nightly jobs.

Every id and value comes from a formula of the row number, so two builds of the same sizes
hold the same data. The big tables are loaded with their triggers off (foreign keys and
the audit log's append-only trigger: the rows are made consistent by construction; the
keys of the event ids built once afterwards), then analysed. Sizes are recorded in
`bench_scale_meta`, so a later run reuses the data.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

# Words the names are made of: about 14,000 distinct company names over a million
# customers, and people's names for users, so partial text matches many or few rows.
ADJECTIVES = ("Acme", "Blue", "Bright", "Cedar", "Delta", "Eager", "Falcon", "Golden", "Harbor",
              "Iron", "Jade", "Kite", "Lunar", "Maple", "North", "Oak", "Pine", "Quartz", "Red",
              "Silver", "Tidal", "Urban", "Violet", "West", "Yellow", "Zenith", "Amber", "Birch",
              "Coral", "Dune", "Ember", "Frost", "Granite", "Hazel", "Indigo", "Juniper", "Kestrel")
NOUNS = ("Labs", "Works", "Systems", "Data", "Cloud", "Robotics", "Analytics", "Media", "Health",
         "Foods", "Logistics", "Energy", "Security", "Studio", "Networks", "Software", "Devices",
         "Capital", "Games", "Bio", "Motors", "Textiles", "Mining", "Farms", "Pharma", "Travel",
         "Retail", "Design", "Telecom", "Water", "Solar", "Audio", "Vision", "Ventures", "Metrics",
         "Signals", "Forge", "Harvest", "Orbit", "Pixel", "Quantum", "Rocket", "Sense", "Thread",
         "Unity", "Vector", "Wave", "Yield", "Zone", "Atlas", "Beacon", "Circuit", "Drift")
SUFFIXES = ("Inc", "Ltd", "GmbH", "LLC", "SAS", "BV", "Co")
FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
         "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
         "yara", "zoe", "amir", "bea", "chen", "dmitri", "elena", "farah", "gustav", "hiro", "ines")
LAST = ("smith", "jones", "garcia", "martin", "muller", "rossi", "tanaka", "kim", "nguyen",
        "novak", "silva", "dubois", "kowalski", "larsen", "ivanova", "okafor", "haddad", "costa",
        "schmidt", "moreau", "fischer", "romero", "sato", "wong", "patel", "singh", "ali",
        "ahmed", "cohen", "murphy", "oconnor", "walsh", "berg", "lund", "weber", "wagner",
        "becker", "hoffmann", "schulz", "koch", "richter", "klein", "wolf", "neumann", "braun")
DOMAINS = ("example.com", "mail.test", "corp.test", "startup.io", "bigco.test", "lab.dev",
           "shop.test", "cloud.test", "agency.test", "school.edu")
ACCOUNT_NAMES = ("Production", "Staging", "Default", "Main", "Sandbox", "Research", "Mobile app",
                 "Backend", "Website", "Partner API")
ACTIONS = ("customer.view", "customer.view", "customer.view", "balance.adjust", "credit.grant",
           "plan.change", "impersonation.start", "impersonation.view", "invoice.resend",
           "grace.extend", "account.create", "customer.create")
# One row per customer for staff search: what models/search.py's rows_of computes (and
# its migration's backfill), for the customers made here.
SEARCH_ROWS = """
    INSERT INTO customer_search (customer_id, created_at, search_text, search_ids)
    SELECT c.id, c.created_at,
      lower(c.name || chr(10) || c.primary_email || chr(10)
        || coalesce((SELECT string_agg(u.email, chr(10)) FROM users u
                     WHERE u.customer_id = c.id), '') || chr(10)
        || coalesce((SELECT string_agg(u.email, chr(10)) FROM memberships m, users u
                     WHERE m.customer_id = c.id AND u.id = m.user_id), '') || chr(10)
        || coalesce((SELECT string_agg(a.name, chr(10)) FROM accounts a
                     WHERE a.customer_id = c.id), '')),
      lower(chr(10) || c.id || chr(10) || coalesce(c.stripe_customer_id, '') || chr(10)
        || coalesce((SELECT string_agg(a.id, chr(10)) FROM accounts a
                     WHERE a.customer_id = c.id), ''))
    FROM customers c
    ORDER BY c.created_at, c.id  -- the newest together at the end: search walks them first
    ON CONFLICT (customer_id) DO NOTHING"""
STAFF_COUNT = 20
STAFF_PASSWORD = "bench-staff-password-1"


@dataclass(frozen=True)
class Sizes:
    customers: int = 1_000_000
    ledger: int = 10_000_000
    audit: int = 5_000_000
    events: int = 20_000_000
    invoices: int = 200_000
    grants: int = 20_000  # scheduled credit grants due now (credit-grants)
    charges: int = 20_000  # accounts with unposted usage (close-period)
    idempotency: int = 200_000  # stored Idempotency-Key answers, half past their TTL

    def scaled(self, customers: int) -> Sizes:
        """These sizes with `customers` customers and every other table in proportion."""
        f = customers / self.customers
        return Sizes(customers, *(max(1, int(v * f)) for k, v in asdict(self).items()
                                  if k != "customers"))


def sql_array(words: tuple[str, ...]) -> str:
    return "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"


def pick(words: tuple[str, ...], expr: str) -> str:
    """SQL: the word of `words` at (expr mod len), 1-based for PostgreSQL arrays."""
    return f"({sql_array(words)})[1 + (({expr}) % {len(words)})]"


def hid(prefix: str, expr: str) -> str:
    """SQL: a public-looking id of 20 characters derived from `expr` (stable, unique)."""
    return f"'{prefix}_' || substr(md5('{prefix}' || ({expr})::text), 1, 20)"


def load(conn: Any, sizes: Sizes, *, log: Any = print) -> None:
    """Fill a migrated, seeded database with `sizes` of data (adds to the demo customer)."""
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET work_mem = '128MB'")
    conn.execute("SET synchronous_commit = off")
    meters = dict(conn.execute("SELECT event_name, id FROM meters").fetchall())
    n = sizes.customers
    params: dict[str, Any] = {"n": n, "api": meters["api_call"], "llm": meters["llm_completion"],
                              "invoices": sizes.invoices + 1}

    conn.execute("CREATE TABLE IF NOT EXISTS bench_scale_steps (name text PRIMARY KEY)")
    conn.commit()
    done = {name for (name,) in conn.execute("SELECT name FROM bench_scale_steps")}

    def step(what: str, *sql: str, tables: tuple[str, ...] = ()) -> None:
        if what in done:
            log(f"#   {what}: made by an earlier build (--resume)")
            return
        started = time.perf_counter()
        for table in tables:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        for statement in sql:
            conn.execute(literal_sql(statement, params))
        for table in tables:
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        conn.execute("INSERT INTO bench_scale_steps VALUES (%s)", (what,))
        conn.commit()
        log(f"#   {what}: {time.perf_counter() - started:.1f} s")

    # Customer i was created (n - i) minutes ago: a million customers over about two years.
    created = "now() - (%(n)s - i) * interval '1 minute'"
    company = (f"{pick(ADJECTIVES, 'i')} || ' ' || {pick(NOUNS, 'i / 37')} || ' ' || "
               f"{pick(SUFFIXES, 'i / 1961')}")
    person = f"{pick(FIRST, 'i * 7')} || '.' || {pick(LAST, 'i / 30')}"
    email = f"{person} || '.' || i || '@' || {pick(DOMAINS, 'i / 3')}"
    step("customers", f"""
        INSERT INTO customers (id, name, primary_email, stripe_customer_id, created_at, invoice_seq)
        SELECT {hid('cust', 'i')}, {company}, {email},
               CASE WHEN i % 3 <> 0 THEN 'cus_' || substr(md5('stripe' || i), 1, 14) END,
               {created}, CASE WHEN i < %(invoices)s THEN 1 ELSE 0 END
        FROM generate_series(1::bigint, %(n)s) AS i""", tables=("customers",))
    step("users", f"""
        INSERT INTO users (id, email, name, password_hash, role, permissions, customer_id,
                           created_at, session_version)
        SELECT {hid('usr', 'i')}, {email}, initcap(replace({person}, '.', ' ')), 'x', 'customer',
               '[]', {hid('cust', 'i')}, {created}, 0
        FROM generate_series(1::bigint, %(n)s) AS i""", tables=("users",))
    per_account = max(1, sizes.ledger // n)
    params["balance"] = 50_000 - 10 * per_account * (per_account - 1) // 2
    step("accounts", f"""
        INSERT INTO accounts (id, customer_id, name, tier, currency, balance, created_at, time_zone,
                              alert_thresholds, pending_usage)
        SELECT {hid('acct', 'i')}, {hid('cust', 'i')}, {pick(ACCOUNT_NAMES, 'i / 11')},
               CASE WHEN i % 10 = 0 THEN 'pro' ELSE 'free' END, 'usd', %(balance)s, {created},
               'UTC', '[80, 100]', 0
        FROM generate_series(1::bigint, %(n)s) AS i""", tables=("accounts",))
    # Staff search's rows (models/search.py), as its migration backfills them; the trigram
    # index built once afterwards. (A schema from before the table: its migration does it.)
    if conn.execute("SELECT to_regclass('customer_search')").fetchone()[0]:
        step("customer_search", "DROP INDEX ix_customer_search_trgm", SEARCH_ROWS,
             "CREATE INDEX ix_customer_search_trgm ON customer_search USING gin "
             "(search_text gin_trgm_ops, search_ids gin_trgm_ops)", tables=("customer_search",))
    staff = ", ".join(f"('{hid_py('usr', -k)}', 'staff{k}@tally.test', 'Staff {k}', 'x', 'staff', "
                      "'[\"impersonate\"]', NULL, now() - interval '3 years', 0)"
                      for k in range(1, STAFF_COUNT + 1))
    step("staff users", f"INSERT INTO users (id, email, name, password_hash, role, permissions, "
                        f"customer_id, created_at, session_version) VALUES {staff}")

    # Ledger: entry k of account a is a top-up of $500 (k = 0) or a usage debit of 10k cents,
    # so every balance is 50,000 - 10 * (0 + 1 + ... + per-1), as set above.
    params["per"] = per_account
    step(f"ledger_entries ({per_account * n:,})", f"""
        INSERT INTO ledger_entries (account_id, amount, currency, kind, source, source_id,
                                    description, created_at, meta)
        SELECT {hid('acct', 'a')},
               CASE WHEN k = 0 THEN 50000 ELSE -10 * k END, 'usd',
               CASE WHEN k = 0 THEN 'topup' ELSE 'usage' END, 'bench', 'b' || a || ':' || k,
               CASE WHEN k = 0 THEN 'Top-up' ELSE 'API calls usage' END,
               now() - (%(n)s - a) * interval '1 minute' - (%(per)s - k) * interval '1 second', '{{}}'::json
        FROM generate_series(1::bigint, %(n)s) AS a, generate_series(0::bigint, %(per)s - 1) AS k
        ORDER BY 8""", tables=("ledger_entries",))

    # Audit: 5M events over the last year, id order = time order; customers spread evenly.
    params["audit"] = sizes.audit
    step(f"audit_events ({sizes.audit:,})", f"""
        INSERT INTO audit_events (created_at, staff_user_id, staff_email, customer_id, account_id,
                                  action, reason, via, ip, user_agent, before, after, meta)
        SELECT now() - interval '365 days' * (1 - i::float8 / %(audit)s),
               'usr_' || substr(md5('usr' || (-(1 + i % {STAFF_COUNT}))::text), 1, 20),
               'staff' || (1 + i % {STAFF_COUNT}) || '@tally.test',
               {hid('cust', '1 + (i * 7919) % %(n)s')}, {hid('acct', '1 + (i * 7919) % %(n)s')},
               {pick(ACTIONS, 'i / 7')},
               CASE WHEN i % 3 = 0 THEN 'Customer asked by email, ticket ' || i ELSE '' END,
               'console', '10.0.' || (i % 250) || '.' || (i % 199), 'Mozilla/5.0 bench',
               NULL, NULL, '{{}}'::json
        FROM generate_series(1::bigint, %(audit)s) AS i""", tables=("audit_events",))

    # Invoices: one usage statement for each of the first customers.
    step(f"invoices ({sizes.invoices:,})", f"""
        INSERT INTO invoices (id, customer_id, account_id, number, kind, source_id, status, currency,
                              total, period_start, period_end, issued_at, paid_at)
        SELECT {hid('inv', 'i')}, {hid('cust', 'i')}, {hid('acct', 'i')},
               upper(substr(md5('cust' || i), 1, 8)) || '-0001', 'usage_statement',
               'bench:' || i, 'paid', 'usd', 1000 + i % 5000,
               date_trunc('month', now()) - interval '1 month', date_trunc('month', now()),
               date_trunc('month', now()), date_trunc('month', now())
        FROM generate_series(1::bigint, %(invoices)s - 1) AS i""",
         """INSERT INTO invoice_lines (invoice_id, description, quantity, unit_amount, amount)
            SELECT id, 'API calls', 1000, NULL, total FROM invoices WHERE source_id LIKE 'bench:%'
         """, tables=("invoices", "invoice_lines"))

    # Usage: events of account a are contiguous and fall in one hour of one of the last 30 days,
    # half api_call, half llm_completion; the rollups and counters are what ingestion writes.
    params["events"] = sizes.events
    params["per_ev"] = max(1, sizes.events // n)
    ev_account = "1 + (i / %(per_ev)s) % %(n)s"
    ev_time = (f"date_trunc('hour', now()) - ((({ev_account}) % 720) + 1) * interval '1 hour' "
               "+ (i % %(per_ev)s) * interval '1 second'")
    # usage_events is partitioned by month of received_at (the migration made this month's
    # and the next): the last 30 days may begin two months back. Then the ids that
    # deduplicate, with their key and index built once afterwards.
    from models.usage import add_months, event_partition_ddl, month_start
    this_month = month_start(datetime.now(UTC))
    step(f"usage_events ({sizes.events:,})",
         *[event_partition_ddl(add_months(this_month, -k)) for k in (2, 1)], f"""
        INSERT INTO usage_events (account_id, event_id, event_name, timestamp, properties,
                                  received_at)
        SELECT {hid('acct', ev_account)}, 'ev_' || i,
               CASE WHEN i % 2 = 0 THEN 'api_call' ELSE 'llm_completion' END, {ev_time},
               CASE WHEN i % 2 = 0 THEN '{{}}'::json
                    ELSE json_build_object('tokens', 1 + i % 2000) END, {ev_time}
        FROM generate_series(0::bigint, %(events)s - 1) AS i""",
         "ALTER TABLE usage_event_ids DROP CONSTRAINT usage_event_ids_pkey",
         "DROP INDEX ix_usage_event_ids_received_at", """
        INSERT INTO usage_event_ids (account_id, event_id, received_at)
        SELECT account_id, event_id, received_at FROM usage_events""",
         "ALTER TABLE usage_event_ids ADD PRIMARY KEY (account_id, event_id)",
         "CREATE INDEX ix_usage_event_ids_received_at ON usage_event_ids (received_at)",
         tables=("usage_events", "usage_event_ids"))
    step("usage_rollups and usage_counters", """
        INSERT INTO usage_rollups (account_id, meter_id, bucket_start, value, events, latest_at)
        SELECT account_id, CASE WHEN event_name = 'api_call' THEN %(api)s ELSE %(llm)s END,
               date_trunc('hour', timestamp),
               sum(CASE WHEN event_name = 'api_call' THEN 1
                        ELSE (properties ->> 'tokens')::bigint END), count(*), NULL
        FROM usage_events WHERE event_id LIKE 'ev\\_%' GROUP BY 1, 2, 3""", """
        INSERT INTO usage_counters (account_id, meter_id, period_start, value, latest_at)
        SELECT account_id, meter_id, date_trunc('month', bucket_start), sum(value), NULL::timestamptz
        FROM usage_rollups GROUP BY 1, 2, 3
        UNION ALL
        SELECT account_id, meter_id, '1970-01-01T00:00:00Z', sum(value), NULL
        FROM usage_rollups GROUP BY 1, 2
        ON CONFLICT DO NOTHING""", tables=("usage_rollups", "usage_counters"))

    # Nightly work waiting: scheduled grants now due, unposted usage of yesterday, and stored
    # Idempotency-Key answers (half older than the 24 hours they are kept).
    params.update(grants=sizes.grants, charges=sizes.charges, idem=sizes.idempotency)
    step(f"credit_grants due ({sizes.grants:,})", f"""
        INSERT INTO credit_grants (id, account_id, amount, currency, reason, effective_from,
                                   created_at, expired_amount)
        SELECT {hid('grant', 'i')}, {hid('acct', '1 + (i * 31) % %(n)s')}, 500, 'usd',
               'Bench: scheduled goodwill credit', now() - interval '1 hour',
               now() - interval '2 days', 0
        FROM generate_series(1::bigint, %(grants)s) AS i""", tables=("credit_grants",))
    step(f"usage_charges unposted ({sizes.charges:,} accounts)", f"""
        INSERT INTO usage_charges (account_id, meter_id, day, amount, posted)
        SELECT {hid('acct', '1 + (i * 17) % %(n)s')}, %(api)s,
               date_trunc('day', now()) - interval '1 day', 100 + i % 900, 0
        FROM generate_series(1::bigint, %(charges)s) AS i
        ON CONFLICT DO NOTHING""", tables=("usage_charges",))
    step(f"idempotency_keys ({sizes.idempotency:,})", """
        INSERT INTO idempotency_keys (owner, key, request_hash, status, body, content_type,
                                      created_at, completed_at)
        SELECT 'bench', 'k' || i, md5(i::text), 200, '{"ok": true}', 'application/json',
               now() - (i % 48) * interval '1 hour' - interval '1 minute', now()
        FROM generate_series(1::bigint, %(idem)s) AS i""")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_scale_meta (sizes json NOT NULL)")
    conn.execute("DELETE FROM bench_scale_meta")
    conn.execute("INSERT INTO bench_scale_meta VALUES (%s)", (json_dumps(asdict(sizes)),))
    conn.commit()
    started = time.perf_counter()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    log(f"#   vacuum analyze: {time.perf_counter() - started:.1f} s")


def literal_sql(statement: str, params: dict[str, Any]) -> str:
    """`statement` with its %(name)s placeholders replaced by the values (ints and ids made
    here, never input), so the SQL may use % freely."""
    def value(match: re.Match[str]) -> str:
        v = params[match.group(1)]
        return str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"

    return re.sub(r"%\((\w+)\)s", value, statement)


def hid_py(prefix: str, i: int) -> str:
    """hid() in Python, for the ids a bench needs to name."""
    import hashlib

    return f"{prefix}_" + hashlib.md5(f"{prefix}{i}".encode()).hexdigest()[:20]


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value)


def stored_sizes(conn: Any) -> Sizes | None:
    """The sizes a previous build recorded, or None."""
    exists = conn.execute("SELECT to_regclass('bench_scale_meta')").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT sizes FROM bench_scale_meta").fetchone()
    conn.commit()
    return Sizes(**row[0]) if row else None
