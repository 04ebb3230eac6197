"""The Lithtrix seed (shared/seeds/002_...): `GET /v1/me` with Lithtrix's fields, and its
upgrade flow end to end (config, a PaymentMethod, setup) with `Authorization: Bearer`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.money


def bearer(customer) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


def test_me_answers_lithtrixs_fields(client, customer):
    me = client.get("/v1/me", headers=bearer(customer))
    assert me.status_code == 200
    body = me.get_json()
    assert body["agent_id"] == customer.account_id
    assert body["agent_name"] == "Acme 1"
    assert body["owner_identifier"] == customer.email
    assert body["tier"] == "free"


@pytest.mark.parametrize("make_payment_method", ["stripe_sdk", "test_id"])
def test_upgrade_flow_end_to_end(client, customer, stripe_client, make_payment_method):
    billing = client.get("/v1/billing", headers=bearer(customer))
    assert billing.get_json()["tier"] == "free"
    assert billing.headers["X-RateLimit-Limit"] == "60"  # the Free plan's per-minute limit

    # 1. The publishable key, no authentication.
    config = client.get("/v1/billing/config")
    assert config.status_code == 200
    publishable_key = config.get_json()["stripe_publishable_key"]
    assert publishable_key.startswith("pk_")
    # 2. A PaymentMethod, as the Stripe SDK creates it client-side (or Stripe's test id).
    if make_payment_method == "stripe_sdk":
        payment_method_id = stripe_client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                     "exp_year": 2034, "cvc": "123"}}).id
    else:
        payment_method_id = "pm_card_visa"
    # 3. Setup.
    setup = client.post("/v1/billing/setup", headers={**bearer(customer),
                                                      "Content-Type": "application/json"},
                        json={"payment_method_id": payment_method_id})
    assert setup.status_code == 200, setup.get_json()
    body = setup.get_json()
    assert body["tier"] == "pro" and body["call_limit"] is None and body["message"]

    after = client.get("/v1/billing", headers=bearer(customer))
    assert after.get_json()["tier"] == "pro" and after.get_json()["call_limit"] is None
    assert after.get_json()["stripe_customer_id"].startswith("cus_")
    assert after.headers["X-RateLimit-Limit"] == "600"  # Pro's
    assert client.get("/v1/me", headers=bearer(customer)).get_json()["tier"] == "pro"


def test_rotate_as_lithtrix_calls_it(client, customer):
    rotated = client.post("/v1/keys/rotate", headers=bearer(customer))
    assert rotated.status_code == 200
    new_key = rotated.get_json()["api_key"]
    assert client.get("/v1/me", headers=bearer(customer)).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
