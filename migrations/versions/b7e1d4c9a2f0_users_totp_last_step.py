"""users.totp_last_step: a two-factor code that let someone in never works again

Revision ID: b7e1d4c9a2f0
Revises: c9a4e2f7b1d3
Create Date: 2026-12-06 12:20:00.000000
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7e1d4c9a2f0'
down_revision = 'c9a4e2f7b1d3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
