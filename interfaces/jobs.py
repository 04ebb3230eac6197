"""Scheduled and background work, each step framed as its own unit of work.

Services never commit; the jobs here decide where one operation ends and the next
begins, so a job killed midway leaves only whole steps behind and a rerun picks up the
rest.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app

from extensions import db
from models.base import utcnow
from services import idempotency, uow
from services.billing import subscriptions
from services.ledger import grants, recharge
from services.ledger import reconcile as reconciliation
from services.notifications import outbox
from services.staff.audit import Actor
from services.usage import period_close, retention
from services.usage.store import dialect


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
                gave_up = outbox.mark_failed(message_id, attempts, exc, kind)
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


# Nightly work, a batch per unit of work: memory stays flat at any number of accounts, a
# run killed midway keeps every batch it committed (a rerun finds only what is left), and
# two runs at once (or on two machines) share the work: each batch claims its rows with
# SELECT ... FOR UPDATE SKIP LOCKED, and every posting is keyed by its cause besides.


def close_period(now: datetime | None = None, batch: int = period_close.BATCH,
                 ) -> period_close.CloseResult:
    """`close-period`: post closed days and issue statements, a batch of accounts per unit
    (in account id order), then end expired grace periods."""
    now = now or utcnow()
    result = period_close.CloseResult()
    after = ""
    while True:
        with uow.unit():
            ids = period_close.accounts_to_close(after, now, batch)
            for account_id in period_close.claim(ids):
                period_close.close_account(account_id, now, result)
        if not ids:
            break
        after = ids[-1]
        db.session.expunge_all()
    with uow.unit():
        result.downgraded = subscriptions.end_expired_grace(now)
    return result


def credit_grants(now: datetime | None = None, batch: int = grants.BATCH) -> dict[str, int]:
    """`credit-grants`: post grants that became effective, then expire those past expiry,
    a batch of grants per unit."""
    now = now or utcnow()
    posted = expired = 0
    while True:
        with uow.unit():
            claimed, done = grants.post_due_batch(now, limit=batch)
        posted += done
        db.session.expunge_all()
        if not claimed:
            break
    while True:
        with uow.unit():
            closed = grants.expire_due(now, limit=batch)
        expired += closed
        db.session.expunge_all()
        if not closed:
            break
    return {"posted": posted, "expired": expired}


def purge_idempotency_keys(now: datetime | None = None, batch: int = 5000) -> int:
    """`purge-idempotency-keys`: delete expired answers, a batch per unit."""
    deleted = 0
    while True:
        with uow.unit():
            gone = idempotency.purge(now=now, limit=batch)
        deleted += gone
        if not gone:
            return deleted


def purge_usage_events(now: datetime | None = None, batch: int = retention.BATCH) -> dict[str, int]:
    """`purge-usage-events`: on PostgreSQL, create this month's and the next months'
    partitions of usage_events and drop the expired ones, a partition per unit; then
    delete expired raw events left outside them and the expired event ids, a batch per
    unit (services/usage/retention.py). Rollups and counters are kept."""
    now = now or utcnow()
    before = retention.cutoff(now, retention.retention_days())
    done = {"partitions_created": 0, "partitions_dropped": 0, "events_deleted": 0,
            "ids_deleted": 0}
    if dialect() == "postgresql":
        for start in retention.months_to_create(now):
            with uow.unit():
                done["partitions_created"] += retention.create_month(start)
        with uow.unit():
            expired = retention.expired_months(before)
        for name in expired:
            with uow.unit():
                done["partitions_dropped"] += retention.drop_month(name, before)
    for key, step in (("events_deleted", retention.delete_events),
                      ("ids_deleted", retention.delete_ids)):
        while True:
            with uow.unit():
                gone = step(before, batch)
            done[key] += gone
            if not gone:
                break
    return done


@outbox.handler(recharge.ATTEMPT, urgent=timedelta(seconds=20))
def run_recharge(payload: dict[str, object]) -> None:
    """One claimed auto-recharge attempt, in steps that each commit on their own: the card
    (a Stripe read), the amount fixed in a row, the charge (holding no lock; keyed by the
    attempt, so a redelivery after a crash makes the same charge), the PaymentIntent
    recorded, then credited exactly once (or the failure recorded)."""
    account_id, seq = str(payload["account_id"]), int(str(payload["seq"]))
    found = recharge.card_for(account_id, seq)
    uow.rollback()  # only read
    if found is None:
        return  # finished already (a redelivery)
    with uow.unit():
        plan = recharge.prepare(account_id, seq, *found)
    if plan is None:
        return
    intent = recharge.charge(plan)
    with uow.unit():
        recharge.record_charge(plan, intent)
    with uow.unit():
        recharge.finish(plan, intent)


@outbox.handler(recharge.RETRY)
def retry_recharge(payload: dict[str, object]) -> None:
    """After a failed attempt's backoff: claim another if credit is still low."""
    with uow.unit():
        recharge.look_again(str(payload["account_id"]), datetime.fromisoformat(str(payload["at"])))


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
            wake.wait(timeout=5)  # also retries what is due, every 5 seconds
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
