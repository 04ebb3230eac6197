"""Stripe webhooks: verify, store once, process once, through a table of handlers.

Every handler re-fetches its object from Stripe (deliveries come twice and out of
order) and calls an idempotent service, so a replay or a concurrent duplicate does
nothing twice. An event is answered 2xx only after its work is committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from extensions import db
from models import WebhookEvent
from models.base import utcnow
from services.billing import subscriptions
from services.billing.gateway import VerifiedEvent, gateway
from services.errors import NotFound, TallyError
from services.ledger import topups


def _payment_intent_succeeded(event: VerifiedEvent) -> str:
    if not event.object_id:
        return "no PaymentIntent in the event"
    try:
        credit = topups.credit_payment_intent(event.object_id)
    except NotFound:
        return "not a Tally top-up; ignored"
    return "credited" if credit.credited else "already credited"


def _subscription_changed(event: VerifiedEvent) -> str:
    if not event.object_id:
        return "no subscription in the event"
    row = subscriptions.sync(event.object_id)
    return f"subscription {row.status}" if row else "not a Tally subscription; ignored"


def _invoice_paid(event: VerifiedEvent) -> str:
    if not event.object_id:
        return "no invoice in the event"
    invoice = gateway().retrieve_invoice(event.object_id)
    if invoice.subscription:
        subscriptions.sync(invoice.subscription)
        subscriptions.mirror_invoice(invoice.id)
    return "invoice mirrored" if invoice.subscription else "not a subscription invoice; ignored"


def _invoice_payment_failed(event: VerifiedEvent) -> str:
    if not event.object_id:
        return "no invoice in the event"
    invoice = gateway().retrieve_invoice(event.object_id)
    row = subscriptions.sync(invoice.subscription) if invoice.subscription else None
    return f"subscription {row.status}" if row else "not a Tally subscription; ignored"


def _checkout_completed(event: VerifiedEvent) -> str:
    row = subscriptions.complete_checkout(event.object_id) if event.object_id else None
    return f"subscription {row.status}" if row else "no subscription; ignored"


HANDLERS: dict[str, Callable[[VerifiedEvent], str]] = {
    "payment_intent.succeeded": _payment_intent_succeeded,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,  # sent with invoice.paid; handled idempotently
    "invoice.payment_failed": _invoice_payment_failed,
    "checkout.session.completed": _checkout_completed,
}


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    status: str  # processed | duplicate | ignored | refused | error (a replay that failed)
    detail: str = ""


def receive(payload: bytes, signature: str | None) -> Outcome:
    """Verify and store a delivery, then process it unless it was processed already."""
    event = gateway().verify_event(payload, signature)
    try:
        db.session.add(WebhookEvent(id=event.id, type=event.type, payload=event.payload))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # stored by an earlier (or concurrent) delivery
    return process(event.id)


def process(event_id: str) -> Outcome:
    """Run the handler for a stored event; safe to call again (replay)."""
    row = db.session.get(WebhookEvent, event_id, populate_existing=True)
    if row is None:
        raise NotFound(f"No such event: {event_id}")
    if row.processed_at is not None and row.last_error is None:
        return Outcome(row.id, row.type, "duplicate")
    handler = HANDLERS.get(row.type)
    event = VerifiedEvent(row.id, row.type, _object_id(row.payload), row.payload)
    row.attempts += 1
    db.session.commit()
    if handler is None:
        _finish(event_id, error=None)
        return Outcome(event_id, row.type, "ignored", "no handler for this event type")
    try:
        detail = handler(event)
    except TallyError as exc:
        if exc.status >= 500:  # Stripe unreachable and the like: let Stripe retry
            db.session.rollback()
            _record_error(event_id, exc.message)
            raise
        _finish(event_id, error=f"{exc.code}: {exc.message}")
        return Outcome(event_id, event.type, "refused", exc.message)
    except Exception as exc:
        db.session.rollback()
        _record_error(event_id, repr(exc))
        raise
    _finish(event_id, error=None)
    return Outcome(event_id, event.type, "processed", detail)


def _object_id(payload: str) -> str | None:
    try:
        return json.loads(payload)["data"]["object"].get("id")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _finish(event_id: str, *, error: str | None) -> None:
    row = db.session.get(WebhookEvent, event_id)
    assert row is not None
    row.processed_at = utcnow()
    row.last_error = error
    db.session.commit()


def _record_error(event_id: str, error: str) -> None:
    row = db.session.get(WebhookEvent, event_id)
    if row is not None:
        row.last_error = error[:2000]
        db.session.commit()
