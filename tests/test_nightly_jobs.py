"""The nightly jobs in batches: each batch commits on its own, so a run that dies keeps
what it did and a rerun finishes the rest; two runs at once share the work and post
nothing twice (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, and keys on every cause)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from extensions import db
from interfaces import jobs
from models import Account, CreditGrant, Customer, IdempotencyRecord, LedgerEntry, UsageCharge
from models.base import utcnow
from models.ledger import KIND_GRANT, KIND_USAGE
from services import uow
from services.errors import InvalidInput
from services.usage import meters
from tests.support.threads import at_once

pytestmark = pytest.mark.money  # runs on PostgreSQL too

N = 20


def seed(app) -> None:
    """N accounts, each with a charge of yesterday not yet posted and a grant due now;
    N stored Idempotency-Key answers two days old."""
    now = utcnow()
    yesterday = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with app.app_context():
        meter = next(m for m in meters.all_meters() if m.event_name == "api_call")
        with uow.unit():
            for i in range(N):
                db.session.add(Customer(id=f"cust_j{i:02d}", name=f"J {i}",
                                        primary_email=f"j{i}@example.com"))
                db.session.flush()
                db.session.add(Account(id=f"acct_j{i:02d}", customer_id=f"cust_j{i:02d}",
                                       name="Main", pending_usage=100))
                db.session.flush()
                db.session.add(UsageCharge(account_id=f"acct_j{i:02d}", meter_id=meter.id,
                                           day=yesterday, amount=100, posted=0))
                db.session.add(CreditGrant(id=f"grant_j{i:02d}", account_id=f"acct_j{i:02d}",
                                           amount=500, currency="usd", reason="goodwill",
                                           effective_from=now - timedelta(hours=1),
                                           created_at=now - timedelta(days=1)))
                db.session.add(IdempotencyRecord(owner="o", key=f"k{i}", request_hash="h",
                                                 created_at=now - timedelta(days=2)))
        db.session.remove()


def ledger_counts(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(select(LedgerEntry.kind, func.count()).group_by(
            LedgerEntry.kind)).all()
        per_account = db.session.execute(select(func.max(func.abs(Account.balance)))).scalar()
        db.session.remove()
    return {**{kind: n for kind, n in rows}, "max_balance": int(per_account or 0)}


def test_a_run_that_dies_keeps_its_batches_and_a_rerun_finishes(app):
    seed(app)
    with app.app_context():
        with uow.unit():  # a fault in the last account: the run dies in its last batch
            db.session.execute(update(Account).where(Account.id == f"acct_j{N - 1:02d}")
                               .values(time_zone="Mars/Olympus_Mons"))
        with pytest.raises(InvalidInput):
            jobs.close_period(batch=3)
        db.session.remove()
    assert ledger_counts(app)[KIND_USAGE] == N - 2  # every batch but the last (j18, j19)
    with app.app_context():
        with uow.unit():
            db.session.execute(update(Account).where(Account.id == f"acct_j{N - 1:02d}")
                               .values(time_zone="UTC"))
        assert jobs.close_period(batch=3).days_posted == 2
        assert jobs.close_period(batch=3).days_posted == 0
        assert jobs.credit_grants(batch=3) == {"posted": N, "expired": 0}
        assert jobs.credit_grants(batch=3) == {"posted": 0, "expired": 0}
        assert jobs.purge_idempotency_keys(batch=3) == N
        assert db.session.execute(select(func.count()).select_from(IdempotencyRecord)).scalar() == 0
        db.session.remove()
    counts = ledger_counts(app)
    assert counts[KIND_USAGE] == N and counts[KIND_GRANT] == N


def test_two_runs_at_once_share_the_work_and_post_nothing_twice(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    seed(app)

    def run() -> tuple[int, int]:
        with app.app_context():
            closed = jobs.close_period(batch=2)
            granted = jobs.credit_grants(batch=2)
            db.session.remove()
        return closed.days_posted, granted["posted"]

    results = at_once([run, run])  # an exception in either run is raised here
    assert sum(days for days, _ in results) == N and sum(g for _, g in results) == N
    counts = ledger_counts(app)
    assert counts[KIND_USAGE] == N and counts[KIND_GRANT] == N
    assert counts["max_balance"] == 400  # 500 granted, 100 of usage: once each
