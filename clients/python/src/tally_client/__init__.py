"""Tally's Python client: the gate (`authorize`), background usage events (`ingest`), and
WSGI/ASGI middleware that authorize every request by the caller's API key."""

from tally_client.client import VERSION as __version__
from tally_client.client import AsyncTally, Tally
from tally_client.errors import (
    BufferFull,
    EventsRejected,
    Forbidden,
    InvalidRequest,
    RateLimited,
    TallyError,
    TallyUnavailable,
    Unauthorized,
    UsageLimitExceeded,
)
from tally_client.middleware import ASGIMiddleware, Charge, RequestInfo, WSGIMiddleware
from tally_client.models import Decision, Event, IngestResult, Policy, RejectedEvent, Usage
from tally_client.retries import Retries

__all__ = [
    "ASGIMiddleware",
    "AsyncTally",
    "BufferFull",
    "Charge",
    "Decision",
    "Event",
    "EventsRejected",
    "Forbidden",
    "IngestResult",
    "InvalidRequest",
    "Policy",
    "RateLimited",
    "RejectedEvent",
    "RequestInfo",
    "Retries",
    "Tally",
    "TallyError",
    "TallyUnavailable",
    "Unauthorized",
    "Usage",
    "UsageLimitExceeded",
    "WSGIMiddleware",
    "__version__",
]
