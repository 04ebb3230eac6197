"""Stripe API version: invoices keep Stripe's number; webhook events their api_version

`invoices.stripe_invoice_number` is Stripe's number for a subscription invoice (shown beside
Tally's so support can match them). `webhook_events.api_version` is the API version Stripe
rendered the event in (the webhook endpoint's); the staff inbox shows it beside the version
Tally reads. Events stored before keep theirs: it is read from their payloads here.

Revision ID: c4e8a1f2b3d5
Revises: d8e2b6c4a1f3
Create Date: 2026-11-24 10:00:00.000000

"""
import json

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'c4e8a1f2b3d5'
down_revision = 'd8e2b6c4a1f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_invoice_number', sa.String(length=64), nullable=True))
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_version', sa.String(length=40), nullable=True))
    bind = op.get_bind()
    events = sa.table('webhook_events', sa.column('id', sa.String), sa.column('payload', sa.Text),
                      sa.column('api_version', sa.String))
    for event_id, payload in bind.execute(sa.select(events.c.id, events.c.payload)).all():
        try:
            version = json.loads(payload).get('api_version')
        except (ValueError, AttributeError):
            continue
        if isinstance(version, str):
            bind.execute(events.update().where(events.c.id == event_id)
                         .values(api_version=version[:40]))


def downgrade():
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_column('api_version')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('stripe_invoice_number')
