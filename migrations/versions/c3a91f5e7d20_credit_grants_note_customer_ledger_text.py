"""credit_grants.note; the customer's ledger no longer shows staff reasons

A grant or adjustment's reason is for the audit log. The ledger description a customer
reads becomes "Credit from Tally" / "Adjustment by Tally support", followed by the note
staff write for the customer, if any. Entries posted before this keep nothing of the
reason (it stays in audit_events and credit_grants.reason).

Revision ID: c3a91f5e7d20
Revises: 943eecc32038
Create Date: 2026-12-06 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3a91f5e7d20'
down_revision = '943eecc32038'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credit_grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
    op.execute("UPDATE ledger_entries SET description = 'Credit from Tally' "
               "WHERE kind = 'grant' AND source = 'credit_grant'")
    op.execute("UPDATE ledger_entries SET description = 'Adjustment by Tally support' "
               "WHERE kind = 'adjustment' AND source = 'staff_adjustment'")


def downgrade():
    # The old descriptions held the staff's reason; they are not put back.
    with op.batch_alter_table('credit_grants', schema=None) as batch_op:
        batch_op.drop_column('note')
