"""After-commit work: queued in the operation's transaction, delivered after its commit.

`enqueue` adds a row to the current unit of work, so a message exists if and only if its
cause committed: a crash loses nothing and a rollback sends nothing. The delivery job
(interfaces/jobs.py) takes each due message in steps, each its own unit of work: `claim`
(a conditional UPDATE that also pushes it a lease ahead, so two deliverers never take the
same one, in any process), `deliver` (the handler for its kind, outside any transaction),
then `mark_sent`, or `mark_failed` (retried with backoff; `failed` after `MAX_ATTEMPTS`,
which staff see). Handlers are at-least-once: one that dies between doing its work and
the mark runs again, so each is idempotent where its work allows (a charge carries an
idempotency key; an email may, rarely, arrive twice).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models.base import utcnow
from models.outbox import FAILED, PENDING, SENT, OutboxMessage
from services import uow

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)  # a claimed message no one marked (its process died) is retried then
BATCH = 100
# Kinds whose delay someone feels (an auto-recharge while credit runs out): a claimed one a
# dead process never marked is retried after its lease, not `LEASE`, and a failed one backs
# off from `URGENT_BACKOFF` (a dropped connection is retried in seconds, not minutes). Safe
# because their handlers are idempotent (the charge carries its key).
URGENT: dict[str, timedelta] = {}
URGENT_BACKOFF = timedelta(seconds=2)

Handler = Callable[[dict[str, Any]], None]
_handlers: dict[str, Handler] = {}


class Retry(Exception):
    """Raised by a handler whose work cannot be done yet; retried with backoff."""


def handler(kind: str, *, urgent: timedelta | None = None) -> Callable[[Handler], Handler]:
    """Register the function that delivers messages of `kind` (one per kind); `urgent`: its
    lease (see URGENT)."""

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
        if urgent is not None:
            URGENT[kind] = urgent
        return fn

    return register


def enqueue(kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
            customer_id: str | None = None, delay: timedelta | None = None) -> None:
    """Queue `payload` for the handler of `kind`, in the current unit of work.

    `dedupe_key` makes a second enqueue of the same cause (a retried operation) a no-op.
    """
    now = utcnow()
    row = {"kind": kind, "payload": payload, "dedupe_key": dedupe_key, "customer_id": customer_id,
           "status": PENDING, "attempts": 0, "created_at": now,
           "available_at": now + (delay or timedelta(0))}
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(OutboxMessage)
    db.session.execute(insert.values(row).on_conflict_do_nothing())
    uow.mark_queued()


def backoff(attempts: int, kind: str | None = None) -> timedelta:
    """1, 2, 4, ... minutes after each failed attempt (an urgent kind: its unit instead of a
    minute), at most 6 hours."""
    unit = URGENT_BACKOFF if (kind or "") in URGENT else timedelta(minutes=1)
    wait: timedelta = min(unit * 2 ** max(attempts - 1, 0), timedelta(hours=6))
    return wait


def due(now: datetime, limit: int) -> list[int]:
    """The ids of messages due for an attempt, oldest first."""
    return list(db.session.execute(
        select(OutboxMessage.id).where(OutboxMessage.status == PENDING,
                                       OutboxMessage.available_at <= now)
        .order_by(OutboxMessage.available_at, OutboxMessage.id).limit(limit)).scalars())


def claim(message_id: int, now: datetime) -> OutboxMessage | None:
    """Take a due message for one attempt (None if another deliverer has it): pushes it a
    lease ahead, so it is tried again if this attempt never reports back."""
    lease: Any = now + LEASE
    if URGENT:
        lease = case(*((OutboxMessage.kind == kind, now + unit) for kind, unit in URGENT.items()),
                     else_=now + LEASE)
    claimed = uow.rows_changed(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING,
               OutboxMessage.available_at <= now)
        .values(available_at=lease, attempts=OutboxMessage.attempts + 1))
    return db.session.get(OutboxMessage, message_id, populate_existing=True) if claimed else None


def deliver(kind: str, payload: dict[str, Any]) -> None:
    """Run the handler of `kind` (outside any transaction that has written)."""
    handler_of = _handlers.get(kind)
    if handler_of is None:
        raise LookupError(f"no handler for outbox messages of kind {kind!r}")
    handler_of(payload)


def mark_sent(message_id: int) -> None:
    """The message was delivered."""
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
        status=SENT, delivered_at=utcnow(), last_error=None))


def mark_failed(message_id: int, attempts: int, error: Exception, kind: str | None = None) -> bool:
    """Record a failed attempt: retried after `backoff`, or `failed` after the last one.
    Returns whether it gave up."""
    gave_up = attempts >= MAX_ATTEMPTS
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
        status=FAILED if gave_up else PENDING, last_error=f"{type(error).__name__}: {error}"[:2000],
        available_at=utcnow() + backoff(attempts, kind)))
    return gave_up


def for_customer(customer_id: str, limit: int = 50) -> list[OutboxMessage]:
    """A customer's messages, newest first (for the staff console)."""
    return list(db.session.execute(
        select(OutboxMessage).where(OutboxMessage.customer_id == customer_id)
        .order_by(OutboxMessage.id.desc()).limit(limit)).scalars())
