"""The Lit Protocol billing seed (shared/seeds/000_...): its four operations called exactly
as published, on both spellings of each path, with `X-Api-Key` or `Authorization: Bearer`."""

from __future__ import annotations

import pytest

from tests.support.payments import pay

pytestmark = pytest.mark.money

CONFIG_PATHS = ("/v1/billing/stripe_config", "/v1/billing/stripe-config")
CREATE_PATHS = ("/v1/billing/create_payment_intent", "/v1/billing/create-payment-intent")
CONFIRM_PATHS = ("/v1/billing/confirm_payment", "/v1/billing/confirm-payment")


@pytest.mark.parametrize("path", CONFIG_PATHS)
def test_stripe_config_answers_lits_publishable_key_without_auth(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json()["publishable_key"] == "pk_test_tally"
    assert response.get_json()["stripe_publishable_key"] == "pk_test_tally"


@pytest.mark.parametrize("create_path, confirm_path", list(zip(CREATE_PATHS, CONFIRM_PATHS, strict=True)))
def test_lits_top_up_flow_credits_once_and_balance_reads_lits_way(client, customer, stripe_client,
                                                                  create_path, confirm_path):
    bearer = {"Authorization": f"Bearer {customer.api_key}"}
    empty = client.get("/v1/billing/balance", headers={"X-Api-Key": customer.api_key}).get_json()
    assert empty["balance_cents"] == 0 and empty["balance_display"] == "$0.00 credit"

    created = client.post(create_path, json={"amount_cents": 500}, headers=bearer)
    assert created.status_code == 200, created.get_json()
    intent = created.get_json()
    assert intent["payment_intent_id"].startswith("pi_")
    assert intent["client_secret"].startswith(intent["payment_intent_id"])
    assert intent["amount"] == 500
    assert pay(stripe_client, intent["payment_intent_id"]) == "succeeded"

    confirmed = client.post(confirm_path, json={"payment_intent_id": intent["payment_intent_id"]},
                            headers={"X-Api-Key": customer.api_key})
    assert confirmed.status_code == 200
    assert confirmed.get_json()["success"] is True and confirmed.get_json()["credited"] is True
    # Credited earlier: still success, and nothing is credited twice.
    again = client.post(confirm_path, json={"payment_intent_id": intent["payment_intent_id"]},
                        headers=bearer)
    assert again.get_json()["success"] is True and again.get_json()["credited"] is False

    balance = client.get("/v1/billing/balance", headers=bearer).get_json()
    assert balance["balance"] == 500  # Tally's meaning is unchanged
    assert balance["balance_cents"] == -500  # Lit's: negative while credit is available
    assert balance["balance_display"] == "$5.00 credit"


def test_an_unpaid_payment_intent_is_not_a_success(client, customer):
    intent = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 1000},
                         headers=customer.headers).get_json()
    refused = client.post("/v1/billing/confirm_payment",
                          json={"payment_intent_id": intent["payment_intent_id"]},
                          headers=customer.headers)
    assert refused.status_code == 409
    assert "success" not in refused.get_json()
    assert refused.get_json()["code"] == "payment_intent_not_succeeded"


@pytest.mark.parametrize("body, param", [
    ({"amount_cents": 499}, "amount_cents"),
    ({"amount_cents": 100_001}, "amount_cents"),
    ({"amount_cents": "500"}, "amount_cents"),
    ({"amount_cents": 5.5}, "amount_cents"),
    ({}, "amount"),
])
def test_bad_amount_cents_is_a_400_naming_it(client, customer, body, param):
    response = client.post("/v1/billing/create_payment_intent", json=body, headers=customer.headers)
    assert response.status_code == 400
    assert response.get_json()["param"] == param


def test_tallys_higher_minimum_applies_to_amount_cents(app, client, customer):
    app.config["TOPUP_MIN_AMOUNT"] = 1000
    low = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 999},
                      headers=customer.headers)
    assert low.status_code == 400 and low.get_json()["code"] == "amount_out_of_range"
    assert low.get_json()["message"] == "Top up between $10.00 and $1,000.00."
    ok = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 1000},
                     headers=customer.headers)
    assert ok.status_code == 200
