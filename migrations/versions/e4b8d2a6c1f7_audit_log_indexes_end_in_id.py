"""audit log indexes end in id (keyset pages at any depth); users by role

The log is read newest first by id, filtered by customer, staff member or action: an
index on (filter, id) serves a page at any depth. The staff filter lists users by role.

Revision ID: e4b8d2a6c1f7
Revises: a7c3e9d1f2b4
Create Date: 2026-12-06 08:40:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e4b8d2a6c1f7'
down_revision = 'a7c3e9d1f2b4'
branch_labels = None
depends_on = None


# Plain CREATE and DROP INDEX (no batch mode: SQLite must never rebuild audit_events, whose
# append-only triggers would go with it).
NEW = (("ix_audit_events_customer_id", "audit_events", ["customer_id", "id"]),
       ("ix_audit_events_staff_id", "audit_events", ["staff_user_id", "id"]),
       ("ix_audit_events_action_id", "audit_events", ["action", "id"]),
       ("ix_users_role", "users", ["role"]))
OLD = (("ix_audit_events_customer_created", "audit_events", ["customer_id", "created_at"]),
       ("ix_audit_events_staff_created", "audit_events", ["staff_user_id", "created_at"]),
       ("ix_audit_events_action", "audit_events", ["action"]))


def upgrade():
    for name, table, columns in NEW:
        op.create_index(name, table, columns)
    for name, table, _ in OLD:
        op.drop_index(name, table_name=table)


def downgrade():
    for name, table, columns in OLD:
        op.create_index(name, table, columns)
    for name, table, _ in NEW:
        op.drop_index(name, table_name=table)
