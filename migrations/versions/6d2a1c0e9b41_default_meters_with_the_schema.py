"""default meters with the schema: apiCalls, llmTokens and storage exist once migrated

They were created on first read, which made a read write. Databases that have them keep
theirs (same names, their own ids).

Revision ID: 6d2a1c0e9b41
Revises: 40fbecf2ce0f
Create Date: 2026-12-06 06:00:00.000000

"""
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '6d2a1c0e9b41'
down_revision = '40fbecf2ce0f'
branch_labels = None
depends_on = None

DEFAULTS = (
    ("apiCalls", "api_call", "count", None, "calls"),
    ("llmTokens", "llm_completion", "sum", "tokens", "tokens"),
    ("storage", "storage_usage", "latest", "bytes", "bytes"),
)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def upgrade():
    meters = sa.table("meters", sa.column("id"), sa.column("name"), sa.column("event_name"),
                      sa.column("aggregation"), sa.column("property"), sa.column("unit"),
                      sa.column("created_at", sa.DateTime(timezone=True)))
    connection = op.get_bind()
    present = {row[0] for row in connection.execute(sa.select(meters.c.name))}
    rows = [{"id": "mtr_" + "".join(secrets.choice(_ALPHABET) for _ in range(20)), "name": name,
             "event_name": event_name, "aggregation": aggregation, "property": prop, "unit": unit,
             "created_at": datetime.now(UTC)}
            for name, event_name, aggregation, prop, unit in DEFAULTS if name not in present]
    if rows:
        op.bulk_insert(meters, rows)


def downgrade():
    pass  # the meters stay: events and counters refer to them
