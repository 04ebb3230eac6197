"""The recording statement (services/usage/store.record on PostgreSQL) at its edges."""

from __future__ import annotations

import pytest

from tests.test_metering import app_config, ingest, rate_storage, stored_events, usage  # noqa: F401

pytestmark = pytest.mark.money


def test_a_batch_with_nothing_to_record_stores_nothing(app, client, customer):
    """Every event rejected: no statement has anything to insert, and the answer says so."""
    answer = ingest(client, customer, [{"id": "x", "event_name": "nobody_meters_this"},
                                       {"id": "y", "event_name": "api_call",
                                        "properties": {"quantity": -1}}]).get_json()
    assert answer["accepted"] == 0 and len(answer["rejected"]) == 2
    assert stored_events(app, customer) == 0
    assert ingest(client, customer, [{"id": "z", "event_name": "api_call"}]).get_json()["accepted"] == 1
    assert usage(client, customer)["usage"]["apiCalls"] == 1
