"""Saved cards through the API against the simulator: SetupIntent and Stripe.js's
confirmCardSetup, list, default, remove; someone else's card is a 404."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.payments import confirm_setup

pytestmark = pytest.mark.money


def saved_card(client, customer, localstripe_url, card="4242424242424242", authenticate=None):
    started = client.post("/v1/billing/setup-intents", headers=customer.headers)
    assert started.status_code == 200, started.get_json()
    body = started.get_json()
    assert body["setup_intent_id"].startswith("seti_") and body["client_secret"]
    seti = confirm_setup(localstripe_url, body["client_secret"], card, authenticate=authenticate)
    return seti


def attach(client, customer, pm):
    return client.post("/v1/payment-methods", json={"payment_method_id": pm},
                       headers=customer.headers)


def cards_of(client, customer):
    listed = client.get("/v1/payment-methods", headers=customer.headers)
    assert listed.status_code == 200, listed.get_json()
    return listed.get_json()["data"]


def test_save_list_default_and_remove_cards(client, customer, localstripe_url, backend):
    assert cards_of(client, customer) == []
    seti = saved_card(client, customer, localstripe_url)
    assert seti["status"] == "succeeded"
    first = attach(client, customer, seti["payment_method"])
    assert first.status_code == 201, first.get_json()
    assert first.get_json() | {"exp_year": 0} == {
        "id": seti["payment_method"], "object": "payment_method", "brand": "visa",
        "last4": "4242", "exp_month": 12, "exp_year": 0, "default": True}

    # A 3-D Secure card: the SetupIntent asks, the customer completes it, the card is saved.
    asked = saved_card(client, customer, localstripe_url, "4000002500003155")
    assert asked["status"] == "requires_action"
    done = saved_card(client, customer, localstripe_url, "4000002500003155", authenticate=True)
    assert done["status"] == "succeeded"
    second = attach(client, customer, done["payment_method"]).get_json()
    assert second["last4"] == "3155" and second["default"] is False
    # A test id works too, and becomes a new card of the customer's.
    mastercard = attach(client, customer, "pm_card_mastercard").get_json()
    assert mastercard["brand"] == "mastercard" and mastercard["id"] != "pm_card_mastercard"

    listed = cards_of(client, customer)
    assert [c["default"] for c in listed] == [True, False, False]
    assert listed[0]["id"] == first.get_json()["id"]

    made = client.post(f"/v1/payment-methods/{second['id']}/default", headers=customer.headers)
    assert made.status_code == 200 and made.get_json()["default"] is True
    assert [c["id"] for c in cards_of(client, customer) if c["default"]] == [second["id"]]

    removed = client.delete(f"/v1/payment-methods/{second['id']}", headers=customer.headers)
    assert removed.status_code == 200 and removed.get_json()["id"] == second["id"]
    left = cards_of(client, customer)
    assert second["id"] not in [c["id"] for c in left] and len(left) == 2
    assert not any(c["default"] for c in left)  # Stripe clears a removed default


def test_someone_elses_card_is_a_404(client, make_customer, localstripe_url):
    owner, other = make_customer("Owner"), make_customer("Other")
    seti = saved_card(client, owner, localstripe_url)
    pm = attach(client, owner, seti["payment_method"]).get_json()["id"]
    for answer in (
        attach(client, other, pm),
        client.post(f"/v1/payment-methods/{pm}/default", headers=other.headers),
        client.delete(f"/v1/payment-methods/{pm}", headers=other.headers),
        client.post("/v1/payment-methods/pm_nonexistent123/default", headers=owner.headers),
        attach(client, owner, "pm_nonexistent123"),
    ):
        assert answer.status_code == 404, answer.get_json()
        assert answer.get_json()["code"] == "resource_missing"
    assert [c["id"] for c in cards_of(client, owner)] == [pm]
    assert cards_of(client, other) == []


def test_a_replayed_setup_intent_answers_its_client_secret_again(client, customer):
    headers = customer.headers | {"Idempotency-Key": "save-card-1"}
    first = client.post("/v1/billing/setup-intents", headers=headers).get_json()
    again = client.post("/v1/billing/setup-intents", headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first


def test_a_declined_card_is_not_saved(client, customer, localstripe_url):
    started = client.post("/v1/billing/setup-intents", headers=customer.headers).get_json()
    with pytest.raises(urllib.error.HTTPError):
        confirm_setup(localstripe_url, started["client_secret"], "4000000000000002")
    assert cards_of(client, customer) == []


# One-click top-ups with a saved card ------------------------------------------------------


def balance_of(client, customer) -> int:
    return client.get("/v1/billing/balance", headers=customer.headers).get_json()["balance"]


def test_a_saved_card_tops_up_in_one_call_and_credits_once(client, customer, stripe_client,
                                                           backend):
    pm = attach(client, customer, "pm_card_visa").get_json()["id"]
    headers = customer.headers | {"Idempotency-Key": "one-click-1"}
    paid = client.post("/v1/billing/payment-intents", headers=headers,
                       json={"amount": 2500, "payment_method_id": pm})
    assert paid.status_code == 200, paid.get_json()
    body = paid.get_json()
    assert body["status"] == "succeeded" and body["credited"] is True
    assert body["balance"] == 2500 == balance_of(client, customer)
    # The replay, the confirm endpoint and the webhook's path all find it credited already.
    again = client.post("/v1/billing/payment-intents", headers=headers,
                        json={"amount": 2500, "payment_method_id": pm})
    assert again.get_json()["payment_intent_id"] == body["payment_intent_id"]
    confirmed = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                            json={"payment_intent_id": body["payment_intent_id"]})
    assert confirmed.get_json()["credited"] is False
    assert balance_of(client, customer) == 2500
    ledger = client.get("/v1/billing/ledger", headers=customer.headers).get_json()["data"]
    assert [e["kind"] for e in ledger] == ["topup"]


def test_a_saved_card_that_needs_3d_secure_answers_requires_action(client, customer,
                                                                   localstripe_url, backend):
    seti = saved_card(client, customer, localstripe_url, "4000002500003155", authenticate=True)
    pm = attach(client, customer, seti["payment_method"]).get_json()["id"]
    asked = client.post("/v1/billing/payment-intents", headers=customer.headers,
                        json={"amount": 2500, "payment_method_id": pm})
    assert asked.status_code == 200, asked.get_json()
    body = asked.get_json()
    assert body["status"] == "requires_action" and body["client_secret"]
    assert "credited" not in body and balance_of(client, customer) == 0
    # Stripe.js confirmCardPayment(client_secret) runs the 3-D Secure step; then confirm.
    pi = body["payment_intent_id"]
    request = urllib.request.Request(
        f"{localstripe_url}/v1/payment_intents/{pi}/_authenticate?success=true",
        data=json.dumps({"key": "pk_test_tally", "client_secret": body["client_secret"]}).encode(),
        method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    confirmed = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                            json={"payment_intent_id": pi})
    assert confirmed.get_json()["credited"] is True and balance_of(client, customer) == 2500


def test_a_declined_saved_card_is_a_402_and_credits_nothing(client, customer, backend):
    pm = attach(client, customer, "pm_card_chargeCustomerFail").get_json()["id"]
    declined = client.post("/v1/billing/payment-intents", headers=customer.headers,
                           json={"amount": 2500, "payment_method_id": pm})
    assert declined.status_code == 402, declined.get_json()
    assert declined.get_json()["code"] == "card_declined"
    assert balance_of(client, customer) == 0


def test_someone_elses_card_cannot_pay_a_top_up(client, make_customer):
    owner, other = make_customer("Owner"), make_customer("Other")
    pm = attach(client, owner, "pm_card_visa").get_json()["id"]
    refused = client.post("/v1/billing/payment-intents", headers=other.headers,
                          json={"amount": 2500, "payment_method_id": pm})
    assert refused.status_code == 404 and refused.get_json()["param"] == "payment_method_id"
    assert balance_of(client, other) == 0 and balance_of(client, owner) == 0
