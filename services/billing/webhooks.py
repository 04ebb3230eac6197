"""Stripe webhooks: verify, store once, process once, through a table of handlers.

Every handler re-fetches its object from Stripe (deliveries come twice and out of
order) and calls an idempotent service, so a replay or a concurrent duplicate does
nothing twice. An event is answered 2xx only after its work is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from extensions import db
from models import WebhookEvent
from models.base import utcnow
from services.billing import subscriptions
from services.billing.gateway import API_VERSION, gateway, parse_event
from services.errors import InvalidInput, NotFound, TallyError
from services.ledger import topups


def _payment_intent_succeeded(payment_intent_id: str) -> str:
    try:
        credit = topups.credit_payment_intent(payment_intent_id)
    except NotFound:
        return "not a Tally top-up; ignored"
    return "credited" if credit.credited else "already credited"


def _subscription_changed(subscription_id: str) -> str:
    row = subscriptions.sync(subscription_id)
    return f"subscription {row.status}" if row else "not a Tally subscription; ignored"


def _invoice_paid(invoice_id: str) -> str:
    invoice = gateway().retrieve_invoice(invoice_id)
    if not invoice.subscription:
        return "not a subscription invoice; ignored"
    row = subscriptions.sync(invoice.subscription)
    if row is None:
        return "not a Tally subscription; ignored"
    mirrored = subscriptions.mirror_invoice(invoice)
    shown = f"; invoice {mirrored.number} (Stripe {invoice.number})" if mirrored else ""
    return f"subscription {row.status}{shown}"


def _invoice_payment_failed(invoice_id: str) -> str:
    invoice = gateway().retrieve_invoice(invoice_id)
    row = subscriptions.sync(invoice.subscription) if invoice.subscription else None
    return f"subscription {row.status}" if row else "not a Tally subscription; ignored"


def _checkout_completed(session_id: str) -> str:
    row = subscriptions.complete_checkout(session_id)
    return f"subscription {row.status}" if row else "no subscription; ignored"


@dataclass(frozen=True)
class Handler:
    """What `data.object` must be (its `object`), and what to do with its id. Handlers read
    nothing else of the payload: they fetch the object from Stripe in `API_VERSION`, so an
    event rendered in another API version (the webhook endpoint's) is handled the same."""

    object_type: str
    run: Callable[[str], str]


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": Handler("payment_intent", _payment_intent_succeeded),
    "customer.subscription.created": Handler("subscription", _subscription_changed),
    "customer.subscription.updated": Handler("subscription", _subscription_changed),
    "customer.subscription.deleted": Handler("subscription", _subscription_changed),
    "invoice.paid": Handler("invoice", _invoice_paid),
    # Sent with invoice.paid; handled idempotently.
    "invoice.payment_succeeded": Handler("invoice", _invoice_paid),
    "invoice.payment_failed": Handler("invoice", _invoice_payment_failed),
    "checkout.session.completed": Handler("checkout.session", _checkout_completed),
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
        db.session.add(WebhookEvent(id=event.id, type=event.type, payload=event.payload,
                                    api_version=event.api_version))
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
    event_type, handler = row.type, HANDLERS.get(row.type)
    row.attempts += 1
    db.session.commit()
    if handler is None:
        _finish(event_id, error=None)
        return Outcome(event_id, event_type, "ignored", "no handler for this event type")
    try:
        object_id = parse_event(row.payload).object_id(handler.object_type)
    except InvalidInput:  # stored before it could be checked, or not JSON at all
        object_id = None
    if object_id is None:
        # Retrying cannot help: record why, so the inbox lists it under "Failed".
        message = unreadable(event_type, handler.object_type, row.api_version)
        _finish(event_id, error=f"unsupported_event_shape: {message}")
        return Outcome(event_id, event_type, "refused", message)
    try:
        detail = handler.run(object_id)
    except TallyError as exc:
        if exc.status >= 500:  # Stripe unreachable and the like: let Stripe retry
            db.session.rollback()
            _record_error(event_id, exc.message)
            raise
        _finish(event_id, error=f"{exc.code}: {exc.message}")
        return Outcome(event_id, event_type, "refused", exc.message)
    except Exception as exc:
        db.session.rollback()
        _record_error(event_id, repr(exc))
        raise
    _finish(event_id, error=None)
    return Outcome(event_id, event_type, "processed", detail)


def unreadable(event_type: str, object_type: str, api_version: str | None) -> str:
    article = "an" if object_type[0] in "aeiou" else "a"
    return (f"Tally cannot read this {event_type} event: its data.object is not {article} "
            f"{object_type} with an id (event API version {api_version or 'not given'}; Tally "
            f"reads Stripe in {API_VERSION}). Nothing was done. Send snapshot events (not thin "
            f"events) to this endpoint.")


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
