"""audit_events: refuse TRUNCATE on PostgreSQL (a statement trigger)

The row trigger refuses UPDATE and DELETE; TRUNCATE removes rows without firing it.

Revision ID: d8e2b6c4a1f3
Revises: c3a91f5e7d20
Create Date: 2026-12-06 11:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'd8e2b6c4a1f3'
down_revision = 'c3a91f5e7d20'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
