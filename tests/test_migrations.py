"""`flask --app app db upgrade` builds exactly the schema the models describe, on SQLite and
(when TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from extensions import db, include_name, include_object

pytestmark = pytest.mark.money  # runs on PostgreSQL too


def empty_database(backend: str) -> None:
    """No tables at all (in the app context), for the migrations to build them."""
    if backend == "postgresql":
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    else:
        db.drop_all()
    db.session.commit()


def test_upgrade_matches_models_and_downgrades_cleanly(app, backend):
    with app.app_context():
        empty_database(backend)
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "include_name": include_name, "include_object": include_object})
            diff = compare_metadata(context, db.metadata)
        assert diff == []
        downgrade(revision="base")
        with db.engine.connect() as connection:
            tables = set(db.inspect(connection).get_table_names()) - {"alembic_version"}
        assert tables == set()


def test_ledger_entries_keep_no_staff_reason_after_the_upgrade(app, backend):
    """Grants and adjustments posted before credit_grants.note said "Credit from Tally:
    <the staff's reason>"; the migration leaves the neutral description."""
    with app.app_context():
        empty_database(backend)
        upgrade(revision="943eecc32038")
        now = "2026-11-01 10:00:00+00:00"
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO customers (id, name, primary_email, invoice_seq, created_at) "
                "VALUES ('cust_m', 'M', 'm@example.com', 0, :now)"), {"now": now})
            connection.execute(text(
                "INSERT INTO accounts (id, customer_id, name, tier, currency, balance, time_zone, "
                "alert_thresholds, pending_usage, created_at) VALUES ('acct_m', 'cust_m', 'M', "
                "'free', 'usd', 0, 'UTC', '[80, 100]', 0, :now)"), {"now": now})
            for n, (kind, source, description) in enumerate([
                    ("grant", "credit_grant", "Credit from Tally: QA goodwill credit"),
                    ("adjustment", "staff_adjustment", "Adjustment by Tally support: fraud review"),
                    ("topup", "stripe_payment_intent", "Paid by card")]):
                connection.execute(text(
                    "INSERT INTO ledger_entries (account_id, amount, currency, kind, source, "
                    "source_id, description, created_at, meta) VALUES ('acct_m', 100, 'usd', "
                    ":kind, :source, :n, :description, :now, '{}')"),
                    {"kind": kind, "source": source, "n": str(n), "description": description,
                     "now": now})
        upgrade()
        with db.engine.connect() as connection:
            descriptions = list(connection.execute(text(
                "SELECT description FROM ledger_entries ORDER BY source_id")).scalars())
        assert descriptions == ["Credit from Tally", "Adjustment by Tally support", "Paid by card"]
        db.session.remove()


def test_a_customer_user_from_before_members_becomes_its_owner(app, backend):
    """Until members, a customer had one login, the person who signed up: the upgrade makes
    them its owner, with their email verified (sign-up proved it)."""
    with app.app_context():
        empty_database(backend)
        upgrade(revision="b6235bd81f8c")
        now = "2026-11-01 10:00:00+00:00"
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO customers (id, name, primary_email, invoice_seq, created_at) "
                "VALUES ('cust_m', 'M', 'm@example.com', 0, :now)"), {"now": now})
            for user_id, role, customer in (("usr_m", "customer", "cust_m"), ("usr_s", "staff", None)):
                connection.execute(text(
                    "INSERT INTO users (id, email, name, password_hash, role, permissions, "
                    "customer_id, session_version, created_at) VALUES (:id, :email, 'M', 'x', "
                    ":role, '[]', :customer, 0, :now)"),
                    {"id": user_id, "email": f"{user_id}@example.com", "role": role,
                     "customer": customer, "now": now})
        upgrade()
        with db.engine.connect() as connection:
            members = connection.execute(text(
                "SELECT customer_id, user_id, role FROM memberships")).all()
            verified = connection.execute(text(
                "SELECT id FROM users WHERE email_verified_at IS NOT NULL")).scalars().all()
        assert [tuple(m) for m in members] == [("cust_m", "usr_m", "owner")]
        assert verified == ["usr_m"]
        db.session.remove()


def test_usage_events_keep_their_rows_through_partitioning_and_back(app, backend):
    """c9a4e2f7b1d3 moves usage_events into monthly partitions (PostgreSQL) and their ids
    into usage_event_ids; the downgrade puts them back, unique per id again."""
    with app.app_context():
        empty_database(backend)
        upgrade(revision="26b6d0180d34")
        now = "2026-11-01 10:00:00+00:00"
        events = [("e1", "2026-09-15 08:00:00+00:00"), ("e2", "2026-10-31 23:59:59+00:00"),
                  ("e3", "2026-11-01 00:00:00+00:00")]
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO customers (id, name, primary_email, invoice_seq, created_at) "
                "VALUES ('cust_m', 'M', 'm@example.com', 0, :now)"), {"now": now})
            connection.execute(text(
                "INSERT INTO accounts (id, customer_id, name, tier, currency, balance, time_zone, "
                "alert_thresholds, pending_usage, created_at) VALUES ('acct_m', 'cust_m', 'M', "
                "'free', 'usd', 0, 'UTC', '[80, 100]', 0, :now)"), {"now": now})
            for event_id, at in events:
                connection.execute(text(
                    "INSERT INTO usage_events (account_id, event_id, event_name, timestamp, "
                    "properties, received_at) VALUES ('acct_m', :id, 'api_call', :at, '{}', :at)"),
                    {"id": event_id, "at": at})
        upgrade()
        with db.engine.connect() as connection:
            ids = connection.execute(text(
                "SELECT event_id FROM usage_event_ids ORDER BY event_id")).scalars().all()
            where = "tableoid::regclass::text" if backend == "postgresql" else "'usage_events'"
            stored = connection.execute(text(
                f"SELECT event_id, {where} FROM usage_events ORDER BY event_id")).all()
            foreign_keys = db.inspect(connection).get_foreign_keys("usage_events")
        assert ids == ["e1", "e2", "e3"]
        if backend == "postgresql":
            assert [tuple(r) for r in stored] == [
                ("e1", "usage_events_p202609"), ("e2", "usage_events_p202610"),
                ("e3", "usage_events_p202611")]
        else:
            assert [r[0] for r in stored] == ["e1", "e2", "e3"]
        assert [(fk["referred_table"], fk["constrained_columns"]) for fk in foreign_keys] == [
            ("accounts", ["account_id"])]
        downgrade(revision="26b6d0180d34")
        with db.engine.connect() as connection:
            back = connection.execute(text(
                "SELECT id, event_id FROM usage_events ORDER BY id")).all()
            inspector = db.inspect(connection)
            unique = inspector.get_unique_constraints("usage_events")
            tables = set(inspector.get_table_names())
        assert [tuple(r) for r in back] == [(1, "e1"), (2, "e2"), (3, "e3")]
        assert [u["column_names"] for u in unique] == [["account_id", "event_id"]]
        assert "usage_event_ids" not in tables
        assert not {t for t in tables if t.startswith("usage_events_")}
        db.session.remove()
