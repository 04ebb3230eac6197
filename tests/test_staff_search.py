"""Staff search as you type, on SQLite and PostgreSQL: every way of finding a customer, and
on PostgreSQL an index for each (a million customers must not be scanned per keystroke)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from extensions import db
from models import Account, Customer, User
from models.base import utcnow
from services import uow
from services.staff import search

pytestmark = pytest.mark.money  # runs on PostgreSQL too


def add(n: int, name: str, email: str, account_name: str, *, user_email: str | None = None,
        stripe: str | None = None) -> tuple[str, str]:
    at = utcnow() - timedelta(days=100 - n)  # later n: newer
    customer = Customer(id=f"cust_T{n:03d}x", name=name, primary_email=email,
                        stripe_customer_id=stripe, created_at=at)
    db.session.add(customer)
    db.session.flush()
    db.session.add(User(id=f"usr_T{n:03d}", email=user_email or email, password_hash="x",
                        customer_id=customer.id, created_at=at))
    db.session.add(Account(id=f"acct_T{n:03d}y", customer_id=customer.id, name=account_name,
                           created_at=at))
    return customer.id, f"acct_T{n:03d}y"


def names(q: str, limit: int = 25) -> list[str]:
    return [c.name for c in search.search_customers(q, limit=limit)]


def test_every_way_of_finding_a_customer(app):
    with app.app_context():
        with uow.unit():
            add(1, "Acme Labs", "ops@acme.test", "Production", stripe="cus_ACME42")
            add(2, "Globex 100% Corp", "billing@globex.test", "Partner API",
                user_email="jane.doe@globex.test")
            add(3, "Initech", "it@initech.test", "Staging")
        assert names("acme") == ["Acme Labs"]
        assert names("ACME lab") == ["Acme Labs"]  # case does not matter
        assert names("billing@glob") == ["Globex 100% Corp"]  # the customer's email
        assert names("jane.doe") == ["Globex 100% Corp"]  # a user's email
        assert names("partner") == ["Globex 100% Corp"]  # an account's name
        assert names("cust_T003") == ["Initech"]  # a customer id, by prefix
        assert names("acct_T001") == ["Acme Labs"]  # an account id, by prefix
        assert names("cus_ACME") == ["Acme Labs"]  # a Stripe customer id
        assert names("100%") == ["Globex 100% Corp"]  # wildcards are matched literally
        assert names("%%") == [] and names("__") == [] and names("nobody") == []
        # Text of one or two characters: (at least) the start of a word.
        assert names("gl") == ["Globex 100% Corp"]
        assert names("la") == ["Acme Labs"]
        assert names(".test") == ["Initech", "Globex 100% Corp", "Acme Labs"]  # newest first
        assert names("", limit=2) == ["Initech", "Globex 100% Corp"]  # empty: the newest
        listed = search.customer_query("test").order_by(Customer.created_at.desc())
        assert [c.name for c in db.session.execute(listed).scalars()] == [
            "Initech", "Globex 100% Corp", "Acme Labs"]


def test_search_uses_an_index_for_each_way_of_matching(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite (the demo) scans")
    with app.app_context():
        with uow.unit():
            add(1, "Acme Labs", "ops@acme.test", "Production")
        for q in ("acme", "jane.doe@globex", "acct_T001", "cust_T00", "cus_ACME"):
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            statement = search.customer_query(q)
            compiled = statement.compile(dialect=db.engine.dialect,
                                         compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in db.session.execute(text("EXPLAIN " + str(compiled))))
            for table in ("customers", "users", "accounts"):
                assert f"Seq Scan on {table}" not in plan, (q, plan)
            db.session.rollback()


def test_the_api_list_pages_through_the_matches(app):
    from services.errors import InvalidInput
    from services.staff import console

    with app.app_context():
        with uow.unit():
            for n in range(1, 5):
                add(n, f"Hooli {n}", f"h{n}@hooli.test", "Main")
            add(5, "Other", "o@other.test", "Main")
        seen, cursor = [], None
        while True:
            page = console.list_customers(q="hooli", limit=2, starting_after=cursor)
            seen += [c.name for c in page.items]
            if not page.has_more:
                break
            cursor = page.items[-1].id
        assert seen == ["Hooli 4", "Hooli 3", "Hooli 2", "Hooli 1"]
        with pytest.raises(InvalidInput):
            console.list_customers(q="hooli", limit=2, starting_after="cust_T005x")  # not a match
