"""usage_events partitioned by month of received_at (PostgreSQL); usage_event_ids deduplicates

Revision ID: c9a4e2f7b1d3
Revises: 26b6d0180d34
Create Date: 2026-12-06 11:45:00.000000

A partitioned table can hold no unique index without its partition key, so the dedupe
record moves to usage_event_ids (account_id, event_id) and usage_events loses its id and
its unique constraint. On PostgreSQL the rows are copied into a new partitioned table (a
partition per month from the oldest row's to three months ahead, and a DEFAULT one): the
copy takes time and disk in proportion to the table, and holds its lock meanwhile. As in
models/usage.py, spelled out: a migration keeps what it did even when the models change.
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c9a4e2f7b1d3'
down_revision = '26b6d0180d34'
branch_labels = None
depends_on = None

AHEAD = 3
COLUMNS = "account_id, event_id, event_name, timestamp, properties, received_at"


def _event_columns():
    return [
        sa.Column('account_id', sa.String(length=32), nullable=False),
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('event_name', sa.String(length=100), nullable=False),
        sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
        sa.Column('properties', sa.JSON(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    ]


def _month(index):
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _create_partitions(oldest):
    """The DEFAULT partition and one per month from `oldest`'s to AHEAD months ahead."""
    op.execute("CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT")
    now = datetime.now(UTC)
    first = (oldest or now).astimezone(UTC)
    for index in range(first.year * 12 + first.month - 1, now.year * 12 + now.month + AHEAD):
        start, end = _month(index), _month(index + 1)
        op.execute(f"CREATE TABLE usage_events_p{start.year:04d}{start.month:02d} PARTITION OF "
                   f"usage_events FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")


def upgrade():
    op.create_table('usage_event_ids',
                    sa.Column('account_id', sa.String(length=32), nullable=False),
                    sa.Column('event_id', sa.String(length=255), nullable=False),
                    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('account_id', 'event_id'))
    op.execute("INSERT INTO usage_event_ids (account_id, event_id, received_at) "
               "SELECT account_id, event_id, received_at FROM usage_events")
    op.create_index('ix_usage_event_ids_received_at', 'usage_event_ids', ['received_at'])
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.rename_table('usage_events', 'usage_events_unpartitioned')
    op.create_table('usage_events', *_event_columns(),
                    postgresql_partition_by='RANGE (received_at)')
    if postgresql:
        oldest = op.get_bind().execute(sa.text(
            "SELECT min(received_at) FROM usage_events_unpartitioned")).scalar()
        _create_partitions(oldest)
    op.execute(f"INSERT INTO usage_events ({COLUMNS}) "
               f"SELECT {COLUMNS} FROM usage_events_unpartitioned")
    op.drop_table('usage_events_unpartitioned')


def downgrade():
    op.rename_table('usage_events', 'usage_events_by_month')
    op.create_table('usage_events',
                    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              autoincrement=True, nullable=False),
                    *_event_columns(),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('account_id', 'event_id',
                                        name='uq_usage_events_account_event'))
    # One row per id, the first received (an id forgotten and received again has two).
    op.execute(f"INSERT INTO usage_events ({COLUMNS}) SELECT {COLUMNS} FROM ("
               "SELECT *, row_number() OVER (PARTITION BY account_id, event_id "
               "ORDER BY received_at) AS n FROM usage_events_by_month) AS e "
               "WHERE n = 1 ORDER BY received_at")
    op.drop_table('usage_events_by_month')  # on PostgreSQL, with its partitions
    op.drop_index('ix_usage_event_ids_received_at', table_name='usage_event_ids')
    op.drop_table('usage_event_ids')
