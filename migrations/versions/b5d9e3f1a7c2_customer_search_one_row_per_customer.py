"""staff search: one row of lowered search text per customer, one trigram index (PostgreSQL)

Revision ID: b5d9e3f1a7c2
Revises: b7e1d4c9a2f0
Create Date: 2026-12-06 11:50:00.000000

"""
import time

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b5d9e3f1a7c2'
down_revision = 'b7e1d4c9a2f0'
branch_labels = None
depends_on = None

BATCH = 50_000  # customers per statement of the backfill

# As models/search.py's rows_of computes them, spelled out: a migration keeps what it did
# even when the models change later. {agg} is string_agg or group_concat.
ROWS = """
INSERT INTO customer_search (customer_id, created_at, search_text, search_ids)
SELECT c.id, c.created_at,
  lower(c.name || :sep || c.primary_email || :sep
    || coalesce((SELECT {agg}(u.email, :sep) FROM users u WHERE u.customer_id = c.id), '')
    || :sep
    || coalesce((SELECT {agg}(u.email, :sep) FROM memberships m, users u
                 WHERE m.customer_id = c.id AND u.id = m.user_id), '')
    || :sep
    || coalesce((SELECT {agg}(a.name, :sep) FROM accounts a WHERE a.customer_id = c.id), '')),
  lower(:sep || c.id || :sep || coalesce(c.stripe_customer_id, '') || :sep
    || coalesce((SELECT {agg}(a.id, :sep) FROM accounts a WHERE a.customer_id = c.id), ''))
FROM customers c
WHERE {after} AND {upto}
ORDER BY c.created_at, c.id
"""
AFTER = "(c.created_at, c.id) > (:after_at, :after_id)"
UPTO = "(c.created_at, c.id) <= (:upto_at, :upto_id)"
LAST_OF_BATCH = ("SELECT c.created_at, c.id FROM customers c WHERE {after} "
                 "ORDER BY c.created_at, c.id LIMIT 1 OFFSET :skip")

# The indexes this replaces (a7c3e9d1f2b4's), recreated by the downgrade.
OLD_TRIGRAM = (
    ("ix_customers_name_trgm", "customers", "name"),
    ("ix_customers_email_trgm", "customers", "primary_email"),
    ("ix_users_email_trgm", "users", "email"),
    ("ix_accounts_name_trgm", "accounts", "name"),
)
OLD_PREFIX = (("ix_customers_id_prefix", "customers", "id"),
              ("ix_customers_stripe_prefix", "customers", "stripe_customer_id"),
              ("ix_accounts_id_prefix", "accounts", "id"))


def upgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        'customer_search',
        sa.Column('customer_id', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('search_text', sa.Text(), nullable=False),
        sa.Column('search_ids', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('customer_id'),
    )
    _backfill(postgresql)
    op.create_index('ix_customer_search_created_at', 'customer_search',
                    ['created_at', 'customer_id'])
    if postgresql:
        op.execute("SET LOCAL maintenance_work_mem = '512MB'")  # the index build, at once
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_customer_search_trgm ON customer_search USING gin "
                   "(search_text gin_trgm_ops, search_ids gin_trgm_ops)")
        op.execute("ANALYZE customer_search")
        for name, _, _ in OLD_TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for name, table, _ in OLD_PREFIX:
        op.drop_index(name, table_name=table)


def _backfill(postgresql: bool) -> None:
    """Every customer's row, BATCH customers per statement, oldest first (so the newest,
    which search walks first, lie together at the table's end), before the indexes are
    built (one build is far cheaper than a million inserts into them)."""
    bind = op.get_bind()
    agg = "string_agg" if postgresql else "group_concat"
    started, after, done = time.perf_counter(), None, 0
    while True:
        since = AFTER if after else "1 = 1"
        keys = {} if after is None else {"after_at": after[0], "after_id": after[1]}
        upto = bind.execute(sa.text(LAST_OF_BATCH.format(after=since)),
                            {**keys, "skip": BATCH - 1}).first()
        rows = ROWS.format(agg=agg, after=since, upto=UPTO if upto else "1 = 1")
        if upto:
            keys.update(upto_at=upto[0], upto_id=upto[1])
        done += bind.execute(sa.text(rows), {**keys, "sep": "\n"}).rowcount
        if upto is None:
            break
        after = tuple(upto)
    if done:
        print(f"customer_search: {done:,} customers in {time.perf_counter() - started:.1f} s",
              flush=True)


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table, column in OLD_PREFIX:
        op.create_index(name, table, [column], postgresql_ops={column: "varchar_pattern_ops"})
    if postgresql:
        for name, table, column in OLD_TRIGRAM:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin (lower({column}) gin_trgm_ops)")
        op.execute("DROP INDEX IF EXISTS ix_customer_search_trgm")
    op.drop_index('ix_customer_search_created_at', table_name='customer_search')
    op.drop_table('customer_search')
