"""customers and invoices keep a billing address (Togai's billingAddress)

Revision ID: a7d3c9e15b42
Revises: e4b8d2a6c1f7
Create Date: 2026-12-06 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7d3c9e15b42'
down_revision = 'e4b8d2a6c1f7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing_address', sa.JSON(), nullable=True))
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('billing_address', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('billing_address')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('billing_address')
