"""usage_alerts: once per account, meter, threshold, period and limit

An alert crossed on Free (80% of 1,000 calls) must not stop the same threshold of Pro's
limit (80% of 100,000) from being recorded after an upgrade in the same month.

Revision ID: b7d41e2a9c10
Revises: 920d0fac548f
Create Date: 2026-11-23 20:45:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b7d41e2a9c10'
down_revision = '920d0fac548f'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('usage_alerts', schema=None) as batch_op:
        batch_op.drop_constraint('uq_usage_alerts_once', type_='unique')
        batch_op.create_unique_constraint(
            'uq_usage_alerts_once', ['account_id', 'meter_id', 'threshold', 'period_start', 'limit'])


def downgrade():
    # Keep the first alert of each (account, meter, threshold, period), as before.
    op.execute(
        "DELETE FROM usage_alerts WHERE id NOT IN (SELECT MIN(id) FROM usage_alerts "
        "GROUP BY account_id, meter_id, threshold, period_start)")
    with op.batch_alter_table('usage_alerts', schema=None) as batch_op:
        batch_op.drop_constraint('uq_usage_alerts_once', type_='unique')
        batch_op.create_unique_constraint(
            'uq_usage_alerts_once', ['account_id', 'meter_id', 'threshold', 'period_start'])
