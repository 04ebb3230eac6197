"""The staff webhook inbox: every Stripe event received, filtered by outcome, and the
audit row of a replay (the replay itself runs in services/billing/webhooks.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from extensions import db
from models import WebhookEvent
from services.billing import webhooks
from services.errors import NotFound
from services.pagination import Page, paginate
from services.staff import audit
from services.staff.audit import Actor
from services.staff.rules import require_staff

WEBHOOK_FILTERS = ("all", "failed", "pending")


def webhook_events(status: str, *, limit: int, starting_after: str | None = None) -> Page[WebhookEvent]:
    """Received Stripe events, newest first: all, failed (an error stored) or pending."""
    query = select(WebhookEvent)
    if status == "failed":
        query = query.where(WebhookEvent.last_error.is_not(None))
    elif status == "pending":
        query = query.where(WebhookEvent.processed_at.is_(None))
    return paginate(query, WebhookEvent, WebhookEvent.received_at, limit=limit,
                    starting_after=starting_after)


def get_webhook_event(event_id: str) -> WebhookEvent:
    """A stored Stripe event, or a 404."""
    row = db.session.get(WebhookEvent, event_id)
    if row is None:
        raise NotFound(f"No such event: {event_id}", param="event_id")
    return row


def webhook_state(event_id: str) -> dict[str, Any]:
    """What a replay may change of a stored event (the audit row's before and after)."""
    row = db.session.get(WebhookEvent, event_id, populate_existing=True)
    if row is None:
        raise NotFound(f"No such event: {event_id}", param="event_id")
    return {"processed_at": row.processed_at, "last_error": row.last_error,
            "attempts": row.attempts, "type": row.type}


def record_replay(actor: Actor, event_id: str, before: dict[str, Any],
                  outcome: webhooks.Outcome) -> None:
    """Audit a replay (its handler ran, idempotently, in a unit of work of its own)."""
    require_staff(actor.staff)
    after = webhook_state(event_id)
    audit.record(actor, "webhook.replay", before={k: v for k, v in before.items() if k != "type"},
                 after={k: v for k, v in after.items() if k != "type"},
                 meta={"event_id": event_id, "type": after["type"], "outcome": outcome.status,
                       "detail": outcome.detail})
