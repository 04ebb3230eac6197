"""Usage events as they arrive, their shape already checked (POST /v1/events's and
POST /v1/authorize's declarations, views/api/schemas/metering.py), and the window of time
an event may fall in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MAX_BATCH = 1000  # events in one request
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)


@dataclass
class EventIn:
    """One usage event."""

    index: int  # its place in the request's batch
    id: str  # the idempotency key, per account
    event_name: str
    timestamp: datetime
    properties: dict[str, Any]
