"""Scheduled and background work, each step framed as its own unit of work.

Services never commit; the jobs here decide where one operation ends and the next
begins, so a job killed midway leaves only whole steps behind and a rerun picks up the
rest.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app

from extensions import db
from models.base import utcnow
from services import uow
from services.ledger import reconcile as reconciliation
from services.notifications import outbox
from services.staff.audit import Actor


@dataclass
class Delivered:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}

    def __bool__(self) -> bool:
        return bool(self.sent or self.retried or self.failed)


def deliver_outbox(now: datetime | None = None, limit: int = outbox.BATCH) -> Delivered:
    """Deliver up to `limit` due outbox messages: claim, deliver, mark, one unit each."""
    result = Delivered()
    now = now or utcnow()
    with uow.unit():
        due = outbox.due(now, limit)
    for message_id in due:
        with uow.unit():
            message = outbox.claim(message_id, now)
            kind, payload, attempts = (message.kind, dict(message.payload), message.attempts) \
                if message else ("", {}, 0)
        if message is None:
            continue  # another deliverer took it
        try:
            outbox.deliver(kind, payload)
        except Exception as exc:
            uow.rollback()
            current_app.logger.warning("outbox message %s (%s) failed: %s", message_id, kind, exc)
            with uow.unit():
                gave_up = outbox.mark_failed(message_id, attempts, exc)
            result.failed += gave_up
            result.retried += not gave_up
            continue
        with uow.unit():
            outbox.mark_sent(message_id)
        result.sent += 1
    return result


def reconcile(*, apply: bool, since: datetime | None = None,
              actor: Actor | None = None) -> reconciliation.Report:
    """Ask Stripe about every top-up not yet credited, one unit of work each (with
    `apply`, credit what succeeded): a run killed midway keeps the credits it made, and a
    rerun, or one beside it, credits nothing twice."""
    report = reconciliation.Report(applied=apply)
    with uow.unit():
        payment_intents = reconciliation.candidates(since)
    for payment_intent_id in payment_intents:
        with uow.unit():
            reconciliation.check(report, payment_intent_id, actor=actor or Actor.cli())
    return report


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
                    while deliver_outbox():
                        pass
                except Exception:
                    app.logger.exception("outbox delivery failed")
                finally:
                    db.session.remove()


_worker = _Worker()


def _after_commit() -> None:
    """After a unit that queued outbox work commits (TALLY_OUTBOX_DELIVERY decides how)."""
    mode = current_app.config.get("OUTBOX_DELIVERY", "thread")
    if mode == "inline":
        deliver_outbox()
    elif mode == "thread":
        _worker.kick(current_app._get_current_object())  # type: ignore[attr-defined]


def init_app(app: Flask) -> None:
    uow.on_commit(_after_commit)
