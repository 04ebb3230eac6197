"""One transaction per operation (services/uow.py) and after-commit work (the outbox)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from extensions import db
from interfaces import jobs
from models import Account, LedgerEntry, OutboxMessage
from models.base import utcnow
from models.ledger import KIND_ADJUSTMENT
from models.outbox import FAILED, PENDING, SENT
from services import uow
from services.billing.gateway import gateway
from services.errors import NotFound
from services.ledger import entries as ledger
from services.notifications import outbox

pytestmark = pytest.mark.money


def test_a_stripe_call_from_a_transaction_that_wrote_is_refused(app, backend, customer):
    with app.app_context():
        db.session.execute(update(Account).where(Account.id == customer.account_id)
                           .values(name="Renamed"))
        with pytest.raises(uow.WriteBeforeNetworkCall):
            gateway().retrieve_payment_intent("pi_does_not_matter")
        uow.rollback()
        # A lock counts as a write: the lock would be held while Stripe answers.
        ledger.lock_account(customer.account_id)
        with pytest.raises(uow.WriteBeforeNetworkCall):
            gateway().retrieve_payment_intent("pi_does_not_matter")
        uow.rollback()
        # Outside a writing transaction the call goes to Stripe (which has no such intent).
        with pytest.raises(NotFound):
            gateway().retrieve_payment_intent("pi_does_not_matter")
        db.session.remove()


def test_an_operation_commits_once_or_not_at_all(app, backend, customer):
    with app.app_context():
        with pytest.raises(RuntimeError), uow.unit():
            ledger.post_entry(customer.account_id, 500, kind=KIND_ADJUSTMENT, source="test",
                              source_id="uow-1")
            raise RuntimeError("the operation fails after posting")
        assert ledger.current_balance(customer.account_id) == 0
        assert db.session.scalar(select(LedgerEntry.id).where(LedgerEntry.source_id == "uow-1")) is None
        with uow.unit():
            ledger.post_entry(customer.account_id, 500, kind=KIND_ADJUSTMENT, source="test",
                              source_id="uow-1")
        with uow.unit():  # the same cause again: nothing posted, nothing rolled back
            again = ledger.post_entry(customer.account_id, 500, kind=KIND_ADJUSTMENT,
                                      source="test", source_id="uow-1")
        assert not again.posted and ledger.current_balance(customer.account_id) == 500
        db.session.remove()


def test_outbox_work_exists_only_if_its_cause_committed(app, backend):
    delivered: list[dict] = []
    outbox.handler("test.note")(delivered.append)
    app.config["OUTBOX_DELIVERY"] = "off"
    with app.app_context():
        with pytest.raises(RuntimeError), uow.unit():
            outbox.enqueue("test.note", {"n": 1})
            raise RuntimeError("rolled back")
        with uow.unit():
            outbox.enqueue("test.note", {"n": 2}, dedupe_key="note-2")
        with uow.unit():  # a retried operation queues its message once
            outbox.enqueue("test.note", {"n": 2}, dedupe_key="note-2")
        assert jobs.deliver_outbox().as_dict() == {"sent": 1, "retried": 0, "failed": 0}
        assert delivered == [{"n": 2}]
        assert jobs.deliver_outbox().as_dict() == {"sent": 0, "retried": 0, "failed": 0}
        db.session.remove()


def test_a_failing_delivery_is_retried_with_backoff_then_given_up(app, backend):
    attempts: list[int] = []

    def flaky(payload: dict) -> None:
        attempts.append(payload["n"])
        raise ConnectionRefusedError("mail server down")

    outbox.handler("test.flaky")(flaky)
    app.config["OUTBOX_DELIVERY"] = "off"
    with app.app_context():
        with uow.unit():
            outbox.enqueue("test.flaky", {"n": 7})
        assert jobs.deliver_outbox().as_dict() == {"sent": 0, "retried": 1, "failed": 0}
        row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "test.flaky"))
        assert row.status == PENDING and row.attempts == 1
        assert "mail server down" in row.last_error
        assert row.available_at >= utcnow() + timedelta(seconds=50)  # backoff: not due now
        assert jobs.deliver_outbox().as_dict() == {"sent": 0, "retried": 0, "failed": 0}
        now = utcnow()
        for n in range(2, outbox.MAX_ATTEMPTS + 1):
            now += outbox.backoff(n - 1) + timedelta(seconds=1)
            result = jobs.deliver_outbox(now=now)
            assert result.failed == (n == outbox.MAX_ATTEMPTS)
        db.session.refresh(row)
        assert row.status == FAILED and row.attempts == outbox.MAX_ATTEMPTS
        assert attempts == [7] * outbox.MAX_ATTEMPTS
        outbox.handler("test.flaky")(lambda payload: None)  # the server is back: too late
        assert jobs.deliver_outbox(now=now + timedelta(days=1)).sent == 0
        assert db.session.scalar(select(OutboxMessage.status).where(
            OutboxMessage.kind == "test.flaky")) != SENT
        db.session.remove()
