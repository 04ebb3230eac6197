"""Staff search as you type, on SQLite and PostgreSQL: every way of finding a customer, the
same customers on both, found by the next search after any write, and on PostgreSQL one
trigram index for every way (a million customers must not be scanned per keystroke)."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

from extensions import db
from models import Account, Customer, Membership, User
from models.base import utcnow
from services import uow
from services.billing import customers as billing_customers
from services.identity import accounts, members, recovery
from services.staff import search
from tests.conftest import PASSWORD

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


def test_search_uses_the_one_trigram_index_for_each_way_of_matching(app, backend):
    if backend != "postgresql":
        pytest.skip("SQLite (the demo) scans")
    with app.app_context():
        with uow.unit():
            add(1, "Acme Labs", "ops@acme.test", "Production")
        for q in ("acme", "jane.doe@globex", "acct_T001", "cust_T00", "cus_ACME"):
            # (a table this small would rather be read whole, or along its key)
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            db.session.execute(text("SET LOCAL enable_indexscan = off"))
            statement = search.customer_query(q)
            compiled = statement.compile(dialect=db.engine.dialect,
                                         compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in db.session.execute(text("EXPLAIN " + str(compiled))))
            for table in ("customers", "users", "accounts", "customer_search"):
                assert f"Seq Scan on {table}" not in plan, (q, plan)
            assert "ix_customer_search_trgm" in plan, (q, plan)
            db.session.rollback()


def test_text_with_no_letter_or_digit_walks_the_newest_customers(app, backend):
    """`@@@` has no trigram: the index would hand back every customer to check (a second or
    more at a million), so it is looked for among the newest customers only, like `ab`."""
    if backend != "postgresql":
        pytest.skip("SQLite (the demo) scans")
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    with app.app_context():
        with uow.unit():
            add(1, "Acme Labs", "ops@acme.test", "Production")
            add(2, "Dash---Co", "hi@dash.test", "Main")
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            assert names("---") == ["Dash---Co"]
            assert names("@@@") == []  # nothing among the newest: the index is not asked
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        db.session.rollback()
    index_plan = [s for s in sent if "enable_indexscan = off" in s]
    assert sent and not index_plan, index_plan


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


def ids(q: str, limit: int = 25) -> list[str]:
    return [c.id for c in search.search_customers(q, limit=limit)]


def test_the_next_search_finds_each_write(app):
    """Emails change, members join and leave, accounts are added and renamed, Stripe ids
    are recorded: each is found (and what it replaced no longer is) by the next search."""
    with app.app_context():
        with uow.unit():
            ada = accounts.sign_up(email="ada@lovelace.test", password=PASSWORD, name="Engines")
        with uow.unit():
            bob = accounts.sign_up(email="bob@builder.test", password=PASSWORD, name="Builders")
        engines, builders = ada.account.customer_id, bob.account.customer_id
        assert ids("bob@builder") == [builders]
        with uow.unit():  # Bob joins Engines too (and works in it now)
            members.add_member(db.session.get(Customer, engines), bob.user, "developer")
        assert ids("bob@builder") == [builders, engines]  # newest first

        links: list[str] = []
        with uow.unit():
            recovery.request_email_change(bob.user, "robert@newmail.test", PASSWORD,
                                          lambda token: links.append(token) or token)
        with uow.unit():
            recovery.verify(links[-1])
        assert ids("robert@newmail") == [builders, engines]  # in both customers he is in
        assert ids("bob@builder") == [builders]  # Builders' own billing email still says so

        with uow.unit():  # he leaves Engines
            db.session.delete(db.session.execute(select(Membership).where(
                Membership.customer_id == engines, Membership.user_id == bob.user.id)).scalar_one())
            bob.user.customer_id = builders
        assert ids("robert@newmail") == [builders]

        with uow.unit():
            db.session.get(Account, ada.account.id).name = "Difference Engine"
            db.session.add(Account(id="acct_ZETA01", customer_id=builders, name="Sandbox"))
        assert ids("difference eng") == [engines]
        assert ids("acct_zeta") == [builders]  # ids match whatever their case
        assert ids(ada.account.id) == [engines]
        with uow.unit():
            billing_customers.remember(db.session.get(Customer, engines), "cus_ZZTOP9")
        assert ids("cus_ZZT") == [engines]


def test_two_writers_of_one_customer_at_once_lose_neither_change(app, backend):
    """PostgreSQL: the second writer waits for the first's search row, then computes it
    again with the first's change committed (else it would write back what it read before)."""
    if backend != "postgresql":
        pytest.skip("SQLite writers take turns (one write lock)")
    with app.app_context(), uow.unit():
        add(1, "Acme Labs", "ops@acme.test", "Production")
    flushed = threading.Event()

    def rename() -> None:
        with app.app_context(), uow.unit():
            db.session.get(Account, "acct_T001y").name = "Quasar"
            db.session.flush()
            flushed.set()
            time.sleep(0.5)  # the other writer starts meanwhile, and waits

    first = threading.Thread(target=rename)
    first.start()
    assert flushed.wait(10)
    with app.app_context(), uow.unit():
        db.session.add(Account(id="acct_T001z", customer_id="cust_T001x", name="Nebula"))
    first.join()
    with app.app_context():
        assert ids("quasar") == ["cust_T001x"] and ids("nebula") == ["cust_T001x"]


# The rule the search implements, in Python over the models: the reference both databases
# (and both PostgreSQL plans) must agree with.
_ID_SHAPE = re.compile(r"^(cust|acct|cus)_[A-Za-z0-9]*$")


def expected(q: str) -> list[str]:
    q = q.strip()
    lowered = q.lower()
    found = []
    customers = db.session.execute(select(Customer).order_by(
        Customer.created_at.desc(), Customer.id.desc())).scalars()
    for c in customers:
        emails = db.session.execute(select(User.email).where(User.customer_id == c.id).union(
            select(User.email).join(Membership, Membership.user_id == User.id)
            .where(Membership.customer_id == c.id))).scalars().all()
        texts = [c.name, c.primary_email, *emails, *(a.name for a in c.accounts)]
        ids_ = [c.id, c.stripe_customer_id or "", *(a.id for a in c.accounts)]
        if any(i.lower().startswith(lowered) for i in ids_) or (
                not _ID_SHAPE.match(q) and any(lowered in t.lower() for t in texts)):
            found.append(c.id)
    return found


@pytest.mark.parametrize("plans", ["as shipped", "tiny walks"])
def test_both_databases_and_both_plans_find_the_same_customers(app, backend, plans, monkeypatch):
    if plans == "tiny walks":  # PostgreSQL: the longer walk, the index, the walk past it
        if backend != "postgresql":
            pytest.skip("one plan on SQLite")
        monkeypatch.setattr(search, "WALK", 2)
        monkeypatch.setattr(search, "WALK_PER_RESULT", 0)
        monkeypatch.setattr(search, "LONG_WALK", 6)
        monkeypatch.setattr(search, "MATCHES_READ", 4)
    with app.app_context():
        with uow.unit():
            add(1, "Acme Labs", "ops@acme.test", "Production", stripe="cus_ACME42")
            add(2, "Globex 100% Corp", "billing@globex.test", "Partner API",
                user_email="jane.doe@globex.test")
            add(3, "Initech", "it@initech.test", "Staging", user_email="olivia.kim@initech.test")
            for n in range(4, 12):
                add(n, f"Olivia Kimball {n}", f"olivia.k{n}@kimball.test", f"Partner {n}",
                    stripe=f"cus_K{n:02d}")
            add(12, "a_b Data", "x@y.test", "Main")
            db.session.add(Membership(customer_id="cust_T002x", user_id="usr_T003", role="viewer"))
        terms = ["olivia.kim", "globex", "partner", "cust_T00", "acct_T01", "cus_K1", "cus_AC",
                 "100%", "a_b", ".test", "KIMBALL 1", "y.t", "nobody"]
        queries = sorted({t[:n] for t in terms for n in range(1, len(t) + 1)})
        for q in queries:
            want = expected(q)
            assert set(ids(q, limit=100)) == set(want), q
            assert ids(q, limit=3) == want[:3], q
