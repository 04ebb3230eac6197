"""Raw usage events by month (PostgreSQL partitions), their ids, and their retention.

An event id counts once for as long as its raw event is kept, across month partitions
too; `purge-usage-events` removes whole expired months (and their ids), creates months
ahead, keeps rollups and counters, and two runs at once do each step once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

import config
from extensions import db
from interfaces import jobs
from models import Account, UsageCounter, UsageEvent, UsageEventId, UsageRollup
from models.base import utcnow
from models.usage import EVENT_PARTITIONS_AHEAD, add_months, event_partition, month_start
from services import uow
from services.usage import events, recording, retention
from services.usage.events import EventIn
from tests.support.threads import at_once

pytestmark = pytest.mark.money  # runs on PostgreSQL too


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def received_at(monkeypatch, at: datetime) -> None:
    """The server's clock as recording stamps `received_at` (what picks the partition)."""
    monkeypatch.setattr("services.usage.store.utcnow", lambda: at)


def stored_in(backend: str, month: datetime) -> list[str]:
    """Where one raw event received in `month` is stored."""
    return [event_partition(month) if backend == "postgresql" else "usage_events"]


def partition_of_events(app, account_id: str) -> list[str]:
    """Where each of the account's raw events is stored (its partition on PostgreSQL)."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            where = ["usage_events"] * db.session.scalar(
                select(func.count()).select_from(UsageEvent).where(UsageEvent.account_id == account_id))
        else:
            where = list(db.session.execute(text(
                "SELECT tableoid::regclass::text FROM usage_events WHERE account_id = :a "
                "ORDER BY received_at"), {"a": account_id}).scalars())
        db.session.remove()
    return where


def partitions(app) -> set[str]:
    with app.app_context():
        names = set(retention.partitions()) if db.engine.dialect.name == "postgresql" else set()
        db.session.remove()
    return names


def create_month(app, start: datetime) -> None:
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with uow.unit():
                retention.create_month(start)
        db.session.remove()


@pytest.fixture
def boundary(app) -> datetime:
    """The start of this month, with last month's partition there (PostgreSQL)."""
    start = month_start(utcnow())
    create_month(app, add_months(start, -1))
    return start


def test_a_batch_retried_in_the_next_month_counts_once(app, backend, client, customer, boundary,
                                                       monkeypatch):
    body = {"events": [{"id": "evt-1", "event_name": "llm_completion",
                        "timestamp": iso(boundary - timedelta(hours=2)),
                        "properties": {"tokens": 70}}]}
    received_at(monkeypatch, boundary - timedelta(minutes=1))
    first = client.post("/v1/events", json=body, headers=customer.headers).get_json()
    received_at(monkeypatch, boundary + timedelta(minutes=1))
    again = client.post("/v1/events", json=body, headers=customer.headers).get_json()
    assert first == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert again == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert partition_of_events(app, customer.account_id) == stored_in(
        backend, add_months(boundary, -1))
    with app.app_context():
        tokens = db.session.scalar(select(func.sum(UsageRollup.value)).where(
            UsageRollup.account_id == customer.account_id))
        db.session.remove()
    assert tokens == 70


def test_a_gate_call_retried_in_the_next_month_counts_once(app, backend, client, customer,
                                                           boundary, monkeypatch):
    received_at(monkeypatch, boundary - timedelta(minutes=1))
    first = client.post("/v1/authorize", json={"id": "req-1"}, headers=customer.headers)
    received_at(monkeypatch, boundary + timedelta(minutes=1))
    again = client.post("/v1/authorize", json={"id": "req-1"}, headers=customer.headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["usage"]["current"] == first.get_json()["usage"]["current"] == 1
    assert partition_of_events(app, customer.account_id) == stored_in(
        backend, add_months(boundary, -1))


def ingest_at(app, account_id: str, at: datetime, ids: list[str], monkeypatch) -> None:
    """Record `ids` (api_call events of an hour before) as received at `at`."""
    received_at(monkeypatch, at)
    with app.app_context():
        with uow.unit():
            account = db.session.get(Account, account_id)
            assert account is not None
            result = recording.ingest(account, [
                EventIn(n, event_id, "api_call", at - timedelta(hours=1), {})
                for n, event_id in enumerate(ids)], now=at)
        assert result.accepted == len(ids)
        db.session.remove()


def kept(app) -> dict[str, object]:
    """The raw events' and ids' ids, and every rollup and counter as it stands."""
    with app.app_context():
        state = {
            "events": sorted(db.session.scalars(select(UsageEvent.event_id))),
            "ids": sorted(db.session.scalars(select(UsageEventId.event_id))),
            "rollups": sorted(map(tuple, db.session.execute(select(
                UsageRollup.meter_id, UsageRollup.bucket_start, UsageRollup.value)).all())),
            "counters": sorted(map(tuple, db.session.execute(select(
                UsageCounter.meter_id, UsageCounter.period_start, UsageCounter.value)).all())),
        }
        db.session.remove()
    return state


def seed_ages(app, customer, monkeypatch) -> datetime:
    """Events received 500 days ago (in their own month's partition), 450 days ago (left
    in the DEFAULT partition, as if the job had not run then) and now; returns now."""
    now = utcnow()
    create_month(app, month_start(now - timedelta(days=500)))
    ingest_at(app, customer.account_id, now - timedelta(days=500), ["old-1", "old-2"], monkeypatch)
    ingest_at(app, customer.account_id, now - timedelta(days=450), ["older-3"], monkeypatch)
    ingest_at(app, customer.account_id, now - timedelta(minutes=5), ["new-4"], monkeypatch)
    return now


def test_expired_months_go_with_their_ids_and_rollups_and_counters_stay(app, customer,
                                                                        monkeypatch):
    now = seed_ages(app, customer, monkeypatch)
    before = kept(app)
    assert before["events"] == before["ids"] == ["new-4", "old-1", "old-2", "older-3"]
    with app.app_context():
        done = jobs.purge_usage_events(now=now, batch=1)
        again = jobs.purge_usage_events(now=now, batch=1)
        db.session.remove()
    after = kept(app)
    assert after["events"] == after["ids"] == ["new-4"]
    assert (after["rollups"], after["counters"]) == (before["rollups"], before["counters"])
    postgresql = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    assert done == {"partitions_created": 0, "partitions_dropped": 1 if postgresql else 0,
                    "events_deleted": 1 if postgresql else 3, "ids_deleted": 3}
    assert again == dict.fromkeys(done, 0)
    if postgresql:
        assert event_partition(month_start(now - timedelta(days=500))) not in partitions(app)


def test_two_runs_at_once_remove_each_month_once(app, backend, customer, monkeypatch):
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    now = seed_ages(app, customer, monkeypatch)
    before = kept(app)

    def run() -> dict[str, int]:
        with app.app_context():
            done = jobs.purge_usage_events(now=now, batch=1)
            db.session.remove()
        return done

    results = at_once([run, run])  # an exception in either run is raised here
    assert {key: sum(r[key] for r in results) for key in results[0]} == {
        "partitions_created": 0, "partitions_dropped": 1, "events_deleted": 1, "ids_deleted": 3}
    after = kept(app)
    assert after["events"] == after["ids"] == ["new-4"]
    assert (after["rollups"], after["counters"]) == (before["rollups"], before["counters"])


def test_months_are_created_ahead_and_take_the_rows_the_default_partition_held(
        app, backend, customer, monkeypatch):
    if backend != "postgresql":
        pytest.skip("PostgreSQL partitions")
    this_month = month_start(utcnow())
    ahead = [event_partition(add_months(this_month, n)) for n in range(EVENT_PARTITIONS_AHEAD + 1)]
    assert set(ahead) <= partitions(app)  # made with the table
    # The job did not run for months: events received then went to the DEFAULT partition.
    later = add_months(this_month, EVENT_PARTITIONS_AHEAD + 2) + timedelta(days=3)
    ingest_at(app, customer.account_id, later, ["late-1", "late-2"], monkeypatch)
    assert partition_of_events(app, customer.account_id) == ["usage_events_default"] * 2
    with app.app_context():
        done = jobs.purge_usage_events(now=later)
        db.session.remove()
    assert done["partitions_created"] == EVENT_PARTITIONS_AHEAD + 1
    assert partition_of_events(app, customer.account_id) == [event_partition(month_start(later))] * 2
    assert {event_partition(add_months(month_start(later), n))
            for n in range(EVENT_PARTITIONS_AHEAD + 1)} <= partitions(app)


def test_retention_must_outlast_the_oldest_event_accepted(app):
    env = {"SECRET_KEY": "x"}
    assert events.MAX_AGE.days == config.EVENTS_MAX_AGE_DAYS
    assert config.from_environment(Path("instance"), env)["EVENT_RETENTION_DAYS"] == 400
    assert config.from_environment(Path("instance"), env | {
        "TALLY_EVENT_RETENTION_DAYS": "36"})["EVENT_RETENTION_DAYS"] == 36
    with pytest.raises(RuntimeError, match="TALLY_EVENT_RETENTION_DAYS must be more than 35"):
        config.from_environment(Path("instance"), env | {"TALLY_EVENT_RETENTION_DAYS": "35"})
    app.config["EVENT_RETENTION_DAYS"] = 30
    with app.app_context(), pytest.raises(RuntimeError, match="more than 35"):
        jobs.purge_usage_events()
