"""users: session_version, bumped at logout and password change to end every session

Revision ID: 920d0fac548f
Revises: 886086c31c32
Create Date: 2026-11-23 16:53:18.113015

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '920d0fac548f'
down_revision = '886086c31c32'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
