"""staff search at a million customers: trigram and id-prefix indexes (PostgreSQL), customers by age

Revision ID: a7c3e9d1f2b4
Revises: 0fb356ffcca8
Create Date: 2026-12-06 08:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a7c3e9d1f2b4'
down_revision = '0fb356ffcca8'
branch_labels = None
depends_on = None

# As in models/accounts.py (SEARCH_INDEXES), spelled out: a migration keeps
# what it did even when the models change later.
POSTGRESQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_customers_name_trgm ON customers USING gin (lower(name) gin_trgm_ops)",
    "CREATE INDEX ix_customers_email_trgm ON customers USING gin (lower(primary_email) gin_trgm_ops)",
    "CREATE INDEX ix_users_email_trgm ON users USING gin (lower(email) gin_trgm_ops)",
    "CREATE INDEX ix_accounts_name_trgm ON accounts USING gin (lower(name) gin_trgm_ops)",
)
TRIGRAM = ("ix_customers_name_trgm", "ix_customers_email_trgm", "ix_users_email_trgm",
           "ix_accounts_name_trgm")
# Id prefixes (`LIKE 'acct_3kT%'`) in any collation; plain (unused) indexes on SQLite.
PREFIX = (("ix_customers_id_prefix", "customers", "id"),
          ("ix_customers_stripe_prefix", "customers", "stripe_customer_id"),
          ("ix_accounts_id_prefix", "accounts", "id"))


def upgrade():
    op.create_index("ix_customers_created_at", "customers", ["created_at", "id"])
    for name, table, column in PREFIX:
        op.create_index(name, table, [column], postgresql_ops={column: "varchar_pattern_ops"})
    if op.get_bind().dialect.name == "postgresql":
        for sql in POSTGRESQL:
            op.execute(sql)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    for name, table, _ in PREFIX:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_customers_created_at", table_name="customers")
