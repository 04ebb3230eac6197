"""After-commit work: queued in the operation's transaction, delivered after its commit.

`enqueue` adds a row to the current unit of work, so a message exists if and only if its
cause committed: a crash loses nothing and a rollback sends nothing. Delivery:

- `deliver_due` claims one due message at a time with a conditional UPDATE (which also
  pushes it a lease ahead, so two deliverers never take the same one, in any process),
  commits the claim, runs the handler for its kind outside any transaction, then marks it
  sent, or records the error and schedules a retry with backoff; after `MAX_ATTEMPTS` it is
  `failed` (staff see it). Handlers are at-least-once: one that dies between doing its work
  and the mark is run again, so each one is idempotent where its work allows (a charge
  carries an idempotency key; an email may, rarely, arrive twice).
- After a unit that queued messages commits, `OUTBOX_DELIVERY` decides: `thread` (servers)
  wakes a background thread of this process; `inline` (tests, the CLI) delivers at once in
  the same thread; `off` leaves everything to `flask --app app deliver-outbox` (cron, or
  `--loop` as a service), which also retries what a process left behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models.base import utcnow
from models.outbox import FAILED, PENDING, SENT, OutboxMessage
from services import uow

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)  # a claimed message no one marked (its process died) is retried then
BATCH = 100

Handler = Callable[[dict[str, Any]], None]
_handlers: dict[str, Handler] = {}


class Retry(Exception):
    """Raised by a handler whose work cannot be done yet; retried with backoff."""


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that delivers messages of `kind` (one per kind)."""

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
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


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, ... minutes after each failed attempt, at most 6 hours."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=6))


@dataclass
class Delivered:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}


def deliver_due(now: datetime | None = None, limit: int = BATCH) -> Delivered:
    """Deliver up to `limit` due messages, each in its own units of work."""
    result = Delivered()
    now = now or utcnow()
    due = list(db.session.execute(
        select(OutboxMessage.id).where(OutboxMessage.status == PENDING,
                                       OutboxMessage.available_at <= now)
        .order_by(OutboxMessage.available_at, OutboxMessage.id).limit(limit)).scalars())
    uow.commit()
    for message_id in due:
        _deliver_one(message_id, now, result)
    return result


def _claim(message_id: int, now: datetime) -> OutboxMessage | None:
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == PENDING,
               OutboxMessage.available_at <= now)
        .values(available_at=now + LEASE, attempts=OutboxMessage.attempts + 1)).rowcount
    message = db.session.get(OutboxMessage, message_id, populate_existing=True) if claimed else None
    uow.commit()
    return message


def _deliver_one(message_id: int, now: datetime, result: Delivered) -> None:
    message = _claim(message_id, now)
    if message is None:
        return  # another deliverer took it
    deliver = _handlers.get(message.kind)
    try:
        if deliver is None:
            raise LookupError(f"no handler for outbox messages of kind {message.kind!r}")
        deliver(dict(message.payload))
    except Exception as exc:
        uow.rollback()
        current_app.logger.warning("outbox message %s (%s) failed: %s", message_id, message.kind, exc)
        gave_up = message.attempts >= MAX_ATTEMPTS
        db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
            status=FAILED if gave_up else PENDING, last_error=f"{type(exc).__name__}: {exc}"[:2000],
            available_at=utcnow() + backoff(message.attempts)))
        uow.commit()
        if gave_up:
            result.failed += 1
        else:
            result.retried += 1
        return
    db.session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
        status=SENT, delivered_at=utcnow(), last_error=None))
    uow.commit()
    result.sent += 1


def for_customer(customer_id: str, limit: int = 50) -> list[OutboxMessage]:
    """A customer's messages, newest first (for the staff console)."""
    return list(db.session.execute(
        select(OutboxMessage).where(OutboxMessage.customer_id == customer_id)
        .order_by(OutboxMessage.id.desc()).limit(limit)).scalars())


# Delivery after commit ------------------------------------------------------------------


class _Worker:
    """One background thread per process that delivers whenever a commit queued work."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.pid: int | None = None
        self.lock = threading.Lock()

    def kick(self, app: Flask) -> None:
        with self.lock:
            if self.pid != os.getpid():  # first use in this process (or in a forked worker)
                self.pid, self.wake = os.getpid(), threading.Event()
                threading.Thread(target=self._run, args=(app, self.wake), daemon=True,
                                 name="tally-outbox").start()
        self.wake.set()

    @staticmethod
    def _run(app: Flask, wake: threading.Event) -> None:
        while True:
            wake.wait(timeout=60)  # also retries what is due, once a minute
            wake.clear()
            with app.app_context():
                try:
                    while deliver_due().as_dict() != Delivered().as_dict():
                        pass
                except Exception:
                    app.logger.exception("outbox delivery failed")
                finally:
                    db.session.remove()


_worker = _Worker()


def _after_commit() -> None:
    mode = current_app.config.get("OUTBOX_DELIVERY", "thread")
    if mode == "inline":
        deliver_due()
    elif mode == "thread":
        _worker.kick(current_app._get_current_object())  # type: ignore[attr-defined]


def init_app(app: Flask) -> None:
    uow.on_commit(_after_commit)
