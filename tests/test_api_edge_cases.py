"""Bad input the contract run (tests/test_contract.py) or reading for it turned up: each
answered 500 before its fix, and must be a 400 naming the field."""

from __future__ import annotations

import pytest

from tests.support.staff import make_staff


@pytest.mark.parametrize("time_zone", ["Europe", "America", "x" * 300])
def test_a_time_zone_that_is_a_folder_or_too_long_is_a_400(client, customer, time_zone):
    response = client.post("/v1/billing/settings", json={"time_zone": time_zone},
                           headers=customer.headers)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["param"] == "time_zone"
    assert client.get("/v1/billing/settings", headers=customer.headers).get_json()["time_zone"] == "UTC"


def test_a_portal_configuration_with_no_features_is_a_400_not_a_stripe_refusal(app, client):
    staff = make_staff(app)
    response = client.post("/v1/billing-portal/configurations", headers=staff.headers,
                           json={"features": {}, "headline": "Acme"})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["param"] == "features"
    created = client.post("/v1/billing-portal/configurations", headers=staff.headers,
                          json={"features": {"invoice_history": {"enabled": True}}})
    assert created.status_code == 201, created.get_json()


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                       "1800-01-01T00:00:00Z"])
def test_a_timestamp_out_of_range_is_a_400(app, client, customer, timestamp):
    event = client.post("/v1/events", headers=customer.headers,
                        json={"id": "evt_far", "event_name": "api_call", "timestamp": timestamp})
    assert event.status_code == 400 and event.get_json()["param"] == "timestamp", event.get_json()
    staff = make_staff(app)
    grant = client.post(f"/v1/accounts/{customer.account_id}/credits", headers=staff.headers,
                        json={"amount": 100, "reason": "test", "effective_from": timestamp})
    assert grant.status_code == 400 and grant.get_json()["param"] == "effective_from"


@pytest.mark.parametrize(("time_zone", "start", "end"), [
    ("America/New_York", "0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),
    ("Asia/Tokyo", "9999-12-30T00:00:00Z", "9999-12-31T23:00:00Z")])
def test_a_series_at_the_ends_of_time_is_a_400(client, customer, time_zone, start, end):
    client.post("/v1/billing/settings", json={"time_zone": time_zone}, headers=customer.headers)
    response = client.get(f"/v1/meters/apiCalls/usage?from={start}&to={end}", headers=customer.headers)
    assert response.status_code == 400 and response.get_json()["param"] == "from", response.get_json()


@pytest.mark.parametrize("query", ["limit=%C2%B2", "starting_after=%C2%B2",
                                   "starting_after=" + "9" * 40, "ending_before=" + "9" * 19])
def test_a_limit_or_cursor_that_is_no_ascii_number_is_a_400(client, customer, query):
    """"²" is a digit to str.isdigit() but not to int(); 40 nines do not fit a BIGINT id."""
    response = client.get(f"/v1/billing/ledger?{query}", headers=customer.headers)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["param"] == query.split("=")[0]


NUL, SURROGATE = "\u0000", '"\\ud800"'


@pytest.mark.money  # PostgreSQL text refuses NUL: run there too when TEST_DATABASE_URL is set
def test_nul_characters_and_lone_surrogates_are_400s(app, client, customer, backend):
    staff = make_staff(app)
    for path in (f"/v1/customers/a{NUL}b", f"/v1/customers?q=a{NUL}", f"/v1/keys?starting_after={NUL}",
                 f"/v1/accounts/{customer.account_id}/credits?ending_before={NUL}"):
        response = client.get(path, headers=staff.headers if "customers" in path or "credits" in path
                              else customer.headers)
        assert response.status_code == 400, (path, response.get_json())
        assert response.get_json()["code"] == "invalid_characters"
    for path, body in (("/v1/events", {"id": f"e{NUL}", "event_name": "api_call"}),
                       ("/v1/events", {"id": "e1", "event_name": "api_call", "properties": {NUL: 1}}),
                       ("/v1/keys", {"name": f"laptop{NUL}"}),
                       ("/v1/authorize", {"id": f"r{NUL}"})):
        response = client.post(path, json=body, headers=customer.headers)
        assert response.status_code == 400, (path, response.get_json())
        assert response.get_json()["code"] == "invalid_json"
    created = client.post("/v1/customers", json={"name": f"Acme{NUL}", "primaryEmail": "a@acme.test"},
                          headers=staff.headers)
    assert created.status_code == 400 and created.get_json()["code"] == "invalid_json"
    lone = client.post("/v1/events", data='{"id": ' + SURROGATE + ', "event_name": "api_call"}',
                       content_type="application/json", headers=customer.headers)
    assert lone.status_code == 400 and lone.get_json()["code"] == "invalid_json"
    # A backslash and "u0000" as text, and a real surrogate pair (an emoji), are fine.
    fine = client.post("/v1/events", headers=customer.headers, json={
        "id": "evt_ok", "event_name": "api_call", "properties": {"path": "C:\\u0000", "mood": "😀"}})
    assert fine.status_code == 200 and fine.get_json()["accepted"] == 1, fine.get_json()
    assert client.get("/v1/events", headers=customer.headers).status_code == 405
    page = client.get(f"/login?next={NUL}")  # pages too: the error page, not a crash
    assert page.status_code == 400 and "text/html" in page.content_type


def test_a_body_nested_too_deeply_is_a_400_with_or_without_idempotency_key(client, customer):
    deep = '{"id": "deep", "event_name": "api_call", "properties": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    for headers in (customer.headers, {**customer.headers, "Idempotency-Key": "deep-1"}):
        response = client.post("/v1/events", data=deep, content_type="application/json", headers=headers)
        assert response.status_code == 400 and response.get_json()["code"] == "invalid_json"


def test_a_payment_method_id_stripe_cannot_have_is_a_400_not_a_stripe_refusal(client, customer):
    """`pm_` followed by characters no Stripe id has went to Stripe, whose 404 was a 502."""
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": "pm_\u00c1U}RmI"})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["param"] == "payment_method_id"
    assert client.get("/v1/billing", headers=customer.headers).get_json()["tier"] == "free"
