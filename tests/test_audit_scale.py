"""The audit log at any size: filtered pages read an index in id order (no sort of every
matching row, no pass over the table), and dates become exact id bounds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from extensions import db
from models import AuditEvent, Customer, User
from services.staff import audit

pytestmark = pytest.mark.money  # runs on PostgreSQL too

START = datetime(2026, 1, 1, tzinfo=UTC)


def seed(n: int) -> None:
    """n rows, one an hour from START, ids in time order; actions and customers alternate."""
    db.session.add(Customer(id="cust_a", name="A", primary_email="a@example.com"))
    db.session.add(Customer(id="cust_b", name="B", primary_email="b@example.com"))
    db.session.add(User(id="usr_staff", email="s@tally.test", password_hash="x", role="staff"))
    db.session.flush()
    db.session.execute(insert(AuditEvent), [
        {"created_at": START + timedelta(hours=i), "staff_user_id": "usr_staff" if i % 2 else None,
         "staff_email": "", "customer_id": "cust_a" if i % 3 else "cust_b",
         "action": "plan.change" if i % 4 else "credit.grant", "reason": "", "via": "console",
         "meta": {"i": i}} for i in range(n)])
    db.session.commit()


def numbers(page: audit.Page) -> list[int]:
    return [e.meta["i"] for e in page.events]


def test_dated_pages_are_exact_at_the_edges(app):
    with app.app_context():
        seed(200)
        since, until = START + timedelta(hours=50), START + timedelta(hours=60)
        page = audit.page(audit.Filters(since=since, until=until), limit=100)
        assert numbers(page) == list(range(59, 49, -1))
        assert page.older is None and page.newer is None
        first = audit.page(audit.Filters(since=since, until=until, action="plan.change"), limit=3)
        assert numbers(first) == [59, 58, 57]
        rest = audit.page(audit.Filters(since=since, until=until, action="plan.change"),
                          before=first.older, limit=100)
        assert numbers(rest) == [55, 54, 53, 51, 50]
        assert numbers(audit.page(audit.Filters(until=START), limit=5)) == []
        assert numbers(audit.page(audit.Filters(since=START + timedelta(days=30)), limit=5)) == []
        assert "credit.grant" in audit.actions() and "plan.change" in audit.actions()


@pytest.mark.parametrize("filters", [
    audit.Filters(),
    audit.Filters(customer_id="cust_a"),
    audit.Filters(staff_id="usr_staff"),
    audit.Filters(action="plan.change"),
    audit.Filters(since=START + timedelta(hours=10), until=START + timedelta(hours=90)),
], ids=["all", "customer", "staff", "action", "dates"])
def test_a_deep_filtered_page_is_an_index_range_in_id_order(app, backend, filters):
    if backend != "postgresql":
        pytest.skip("PostgreSQL's plans")
    with app.app_context():
        seed(2000)
        db.session.execute(text("ANALYZE audit_events"))
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        db.session.execute(text("SET LOCAL enable_bitmapscan = off"))
        query = filters.query().where(AuditEvent.id < 1500).order_by(AuditEvent.id.desc()).limit(50)
        compiled = query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in db.session.execute(text("EXPLAIN " + str(compiled))))
        assert "Seq Scan" not in plan and "Sort" not in plan, plan
        # An index range on id (the dates' InitPlans probe created_at for the bounds).
        assert re.search(r"Index Cond: \(.*\bid < ", plan), plan
