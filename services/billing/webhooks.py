"""Stripe webhooks: verify, store once, process once, through a table of handlers.

A delivery is two units of work: `record` stores the verified event (once, by its id),
then `process` runs its handler and marks it processed in the same transaction as the
work. A failure of the work rolls it back, and `record_failure` keeps the error on the
event (its own unit), for Stripe's retry or a replay. Every handler re-fetches its object
from Stripe (deliveries come twice and out of order) before it writes anything, and calls
an idempotent service, so a replay or a concurrent duplicate does nothing twice. An event
is answered 2xx only after its work is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import WebhookEvent
from models.base import utcnow
from services.billing import hosted, subscriptions
from services.billing.gateway import gateway
from services.billing.stripe_objects import API_VERSION, parse_event
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
    row = hosted.complete_checkout(session_id)
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


def record(payload: bytes, signature: str | None) -> str:
    """Verify a delivery and store it, unless an earlier (or concurrent) delivery did; the
    event's id."""
    event = gateway().verify_event(payload, signature)
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(WebhookEvent)
    db.session.execute(insert.values(
        id=event.id, type=event.type, payload=event.payload, api_version=event.api_version,
        received_at=utcnow(), attempts=0).on_conflict_do_nothing())
    return event.id


def process(event_id: str) -> Outcome:
    """Run the handler for a stored event and mark it processed (one unit of work with
    the handler's); safe to call again (replay)."""
    row = db.session.get(WebhookEvent, event_id, populate_existing=True)
    if row is None:
        raise NotFound(f"No such event: {event_id}")
    if row.processed_at is not None and row.last_error is None:
        return Outcome(row.id, row.type, "duplicate")
    event_type, handler, payload = row.type, HANDLERS.get(row.type), row.payload
    if handler is None:
        _finish(row, error=None)
        return Outcome(event_id, event_type, "ignored", "no handler for this event type")
    try:
        object_id = parse_event(payload).object_id(handler.object_type)
    except InvalidInput:  # stored before it could be checked, or not JSON at all
        object_id = None
    if object_id is None:
        # Retrying cannot help: record why, so the inbox lists it under "Failed".
        message = unreadable(event_type, handler.object_type, row.api_version)
        _finish(row, error=f"unsupported_event_shape: {message}")
        return Outcome(event_id, event_type, "refused", message)
    try:
        detail = handler.run(object_id)  # reads Stripe first, then writes
    except TallyError as exc:
        if exc.status >= 500:  # Stripe unreachable and the like: let Stripe retry
            raise
        _finish(row, error=f"{exc.code}: {exc.message}")
        return Outcome(event_id, event_type, "refused", exc.message)
    _finish(row, error=None)
    return Outcome(event_id, event_type, "processed", detail)


def record_failure(event_id: str, error: BaseException) -> None:
    """Keep the error of a delivery whose work failed (and was rolled back)."""
    message = error.message if isinstance(error, TallyError) else repr(error)
    db.session.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(
        attempts=WebhookEvent.attempts + 1, last_error=message[:2000]))


def unreadable(event_type: str, object_type: str, api_version: str | None) -> str:
    """Why an event whose data.object Tally cannot read is refused (stored on the event)."""
    article = "an" if object_type[0] in "aeiou" else "a"
    return (f"Tally cannot read this {event_type} event: its data.object is not {article} "
            f"{object_type} with an id (event API version {api_version or 'not given'}; Tally "
            f"reads Stripe in {API_VERSION}). Nothing was done. Send snapshot events (not thin "
            f"events) to this endpoint.")


def _finish(row: WebhookEvent, *, error: str | None) -> None:
    row.attempts += 1
    row.processed_at = utcnow()
    row.last_error = error
