"""The JSON API contract: auth, shapes, errors, key rotation."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token, login


def test_me_and_billing(client, customer):
    me = client.get("/v1/me", headers=customer.headers)
    assert me.status_code == 200
    assert me.get_json() == {"account_id": customer.account_id, "email": customer.email,
                             "name": "Acme 1", "tier": "free", "agent_id": customer.account_id,
                             "agent_name": "Acme 1", "owner_identifier": customer.email}
    billing = client.get("/v1/billing",
                         headers={"Authorization": f"Bearer {customer.api_key}"}).get_json()
    assert billing == {"tier": "free", "calls_total": 0, "call_limit": None, "over_limit": False,
                       "stripe_customer_id": None, "balance": 0, "currency": "usd"}
    assert client.get("/v1/billing/balance", headers=customer.headers).get_json() == {
        "balance": 0, "currency": "usd", "posted_balance": 0, "pending_usage": 0,
        "balance_cents": 0, "balance_display": "$0.00 credit"}


def test_stripe_config_needs_no_key(client):
    for path in ("/v1/billing/config", "/v1/billing/stripe-config"):
        assert client.get(path).get_json() == {"stripe_publishable_key": "pk_test_tally",
                                               "publishable_key": "pk_test_tally"}


@pytest.mark.parametrize("headers, code", [
    ({}, "missing_api_key"),
    ({"X-Api-Key": "nope"}, "invalid_api_key"),
    ({"Authorization": "Bearer tly_" + "a" * 40}, "invalid_api_key"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
])
def test_bad_keys_are_401_with_one_error_shape(client, headers, code):
    response = client.get("/v1/billing", headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == code and body["error"] == "Unauthorized" and body["message"]


def test_errors_under_v1_are_json_never_html(client, customer):
    missing = client.get("/v1/no-such-thing", headers=customer.headers)
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"
    wrong_method = client.delete("/v1/billing", headers=customer.headers)
    assert wrong_method.status_code == 405 and wrong_method.get_json()["code"] == "method_not_allowed"
    not_object = client.post("/v1/billing/payment-intents", json=[1, 2],
                             headers=customer.headers)
    assert not_object.status_code == 400 and not_object.get_json()["code"] == "invalid_json"
    huge = client.post("/v1/billing/payment-intents", data=b"x" * (3 * 1024 * 1024),
                       headers={**customer.headers, "Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.get_json()["code"] == "request_too_large"


def test_rotate_refuses_the_old_key_at_once(client, customer):
    rotated = client.post("/v1/keys/rotate", headers=customer.headers)
    assert rotated.status_code == 200
    new_key = rotated.get_json()["api_key"]
    assert new_key.startswith("tly_") and new_key != customer.api_key
    old = client.get("/v1/me", headers=customer.headers)
    assert old.status_code == 401 and old.get_json()["code"] == "invalid_api_key"
    assert client.get("/v1/me", headers={"X-Api-Key": new_key}).status_code == 200
    # Rotating with the old key again is refused too.
    assert client.post("/v1/keys/rotate", headers=customer.headers).status_code == 401


def test_keys_are_listed_with_prefix_only(client, customer):
    keys = client.get("/v1/keys", headers=customer.headers).get_json()["data"]
    assert len(keys) == 1
    assert customer.api_key.startswith(keys[0]["prefix"])
    assert customer.api_key not in str(keys)


def test_rotate_a_key_of_another_account_is_404(client, make_customer):
    alice, bob = make_customer("Alice"), make_customer("Bob")
    bob_key = client.get("/v1/keys", headers=bob.headers).get_json()["data"][0]["id"]
    response = client.post("/v1/keys/rotate", json={"key_id": bob_key}, headers=alice.headers)
    assert response.status_code == 404
    assert client.get("/v1/me", headers=bob.headers).status_code == 200


def test_rotate_from_the_keys_page(client, customer):
    login(client, customer)
    html = client.get("/keys").get_data(as_text=True)
    key_id = client.get("/v1/keys", headers=customer.headers).get_json()["data"][0]["id"]
    response = client.post(f"/keys/{key_id}/rotate", data={"csrf_token": csrf_token(html)},
                           headers={"HX-Request": "true", "HX-Target": "keys_panel"})
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment  # just the panel
    new_key = fragment.split('data-testid="new-api-key">')[1].split("<")[0]
    assert client.get("/v1/me", headers={"X-Api-Key": new_key}).status_code == 200
    assert client.get("/v1/me", headers=customer.headers).status_code == 401


def test_stored_keys_are_hashes(app, customer):
    from extensions import db
    from models import ApiKey

    with app.app_context():
        stored = db.session.query(ApiKey).one()
        assert stored.key_hash != customer.api_key and customer.api_key not in stored.key_hash
        assert len(stored.prefix) == 12
