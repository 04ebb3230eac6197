"""Ingestion stores only what it meters, within bounds; sign-up is throttled per address.

An event no meter reads is rejected per event (`unknown_event_name`), as the gate refuses
it; an event whose properties are over TALLY_MAX_EVENT_PROPERTIES_BYTES (4 KiB) is
rejected (`properties_too_large`); neither is stored. tests/chaos/test_chaos_hostile.py
shows what a hostile client costs on disk against gunicorn and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import config
from extensions import db
from models import IdempotencyRecord, UsageEvent
from tests.conftest import csrf_token
from tests.support.state import snapshot


def stored_events(app) -> list[str]:
    with app.app_context():
        ids = sorted(db.session.scalars(select(UsageEvent.event_id)))
        db.session.remove()
    return ids


def properties_of(size: int) -> dict[str, str]:
    """Properties whose compact JSON is exactly `size` bytes."""
    return {"pad": "x" * (size - len('{"pad":""}'))}


def test_events_no_meter_reads_are_rejected_one_by_one_and_not_stored(app, client, customer):
    response = client.post("/v1/events", headers=customer.headers, json={"events": [
        {"id": "ok-1", "event_name": "api_call"},
        {"id": "junk-1", "event_name": "page_view", "properties": {"blob": "y" * 1900}},
        {"id": "ok-2", "event_name": "llm_completion", "properties": {"tokens": 12}},
        {"id": "junk-2", "event_name": "api_calls"},  # a typo: the gate refuses it too
    ]})
    assert response.status_code == 200
    body = response.get_json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [(r["index"], r["id"], r["code"]) for r in body["rejected"]] == [
        (1, "junk-1", "unknown_event_name"), (3, "junk-2", "unknown_event_name")]
    assert "page_view" in body["rejected"][0]["message"]
    assert stored_events(app) == ["ok-1", "ok-2"]
    gate = client.post("/v1/authorize", headers=customer.headers, json={"event_name": "api_calls"})
    assert gate.status_code == 400 and gate.get_json()["code"] == "unknown_event_name"


def test_properties_over_the_bound_are_rejected_with_their_own_code(app, client, customer):
    response = client.post("/v1/events", headers=customer.headers, json={"events": [
        {"id": "at-limit", "event_name": "api_call", "properties": properties_of(4096)},
        {"id": "over", "event_name": "api_call", "properties": properties_of(4097)},
        {"id": "wide", "event_name": "api_call", "properties": {"é" * 10: "€" * 1400}},
    ]})
    body = response.get_json()
    assert body["accepted"] == 1
    assert [(r["id"], r["code"]) for r in body["rejected"]] == [
        ("over", "properties_too_large"), ("wide", "properties_too_large")]
    assert "4,096 bytes" in body["rejected"][0]["message"]
    assert stored_events(app) == ["at-limit"]
    before = snapshot(app)
    gate = client.post("/v1/authorize", headers=customer.headers,
                       json={"event_name": "api_call", "properties": properties_of(5000)})
    assert gate.status_code == 400
    assert (gate.get_json()["code"], gate.get_json()["param"]) == ("properties_too_large", "properties")
    assert snapshot(app) == before


@pytest.mark.parametrize("app_config", [{"MAX_EVENT_PROPERTIES_BYTES": 100}])
def test_the_bound_is_a_setting(app, client, customer):
    response = client.post("/v1/events", headers=customer.headers, json={"events": [
        {"id": "small", "event_name": "api_call", "properties": properties_of(100)},
        {"id": "big", "event_name": "api_call", "properties": properties_of(101)}]})
    assert [r["code"] for r in response.get_json()["rejected"]] == ["properties_too_large"]
    env = {"SECRET_KEY": "x"}
    assert config.from_environment(Path("instance"), env)["MAX_EVENT_PROPERTIES_BYTES"] == 4096
    assert config.from_environment(Path("instance"), env | {
        "TALLY_MAX_EVENT_PROPERTIES_BYTES": "1024"})["MAX_EVENT_PROPERTIES_BYTES"] == 1024


def test_a_large_answer_is_not_kept_in_the_idempotency_store(app, client, customer):
    """1,000 rejected events answer ~100 KB: kept for a day per Idempotency-Key, that would
    be disk a client fills with junk. It is not kept; the retry runs again, and event ids
    make it count nothing twice."""
    junk = {"events": [{"id": f"junk-{n}-" + "i" * 60, "event_name": "nobody_meters_this"}
                       for n in range(1000)]}
    headers = customer.headers | {"Idempotency-Key": "junk-batch"}
    first = client.post("/v1/events", headers=headers, json=junk)
    assert first.status_code == 200 and len(first.get_data()) > 64 * 1024
    assert len(first.get_json()["rejected"]) == 1000
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
        db.session.remove()
    again = client.post("/v1/events", headers=headers, json=junk)
    assert "Idempotent-Replayed" not in again.headers and again.get_json() == first.get_json()
    small = client.post("/v1/events", headers=customer.headers | {"Idempotency-Key": "small"},
                        json={"id": "one", "event_name": "api_call"})
    replay = client.post("/v1/events", headers=customer.headers | {"Idempotency-Key": "small"},
                         json={"id": "one", "event_name": "api_call"})
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == small.get_json()


def signup_post(client, n: int, address: str):
    page = client.get("/signup", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    return client.post("/signup", environ_base={"REMOTE_ADDR": address}, data={
        "name": f"Bot {n}", "email": f"bot{n}@example.com", "password": "short",
        "csrf_token": csrf_token(page)})


@pytest.mark.parametrize("app_config", [{"SIGNUP_RATE_LIMIT": "3/hour"}])
def test_sign_up_is_throttled_per_client_address(app, client, mail):
    answers = [signup_post(client, n, "198.51.100.7").status_code for n in range(5)]
    assert answers == [400, 400, 400, 429, 429]
    throttled = signup_post(client, 9, "198.51.100.7").get_data(as_text=True)
    assert "Too many sign-ups from your network" in throttled
    assert signup_post(client, 10, "203.0.113.9").status_code == 400  # another address
    env = {"SECRET_KEY": "x"}
    assert config.from_environment(Path("instance"), env)["SIGNUP_RATE_LIMIT"] == "10/hour"
    assert config.from_environment(Path("instance"), env | {
        "TALLY_SIGNUP_LIMIT": "5/day"})["SIGNUP_RATE_LIMIT"] == "5/day"
