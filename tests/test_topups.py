"""Top-ups through the JSON API against localstripe: bounds, exactly-once credit, refusals."""

from __future__ import annotations

import pytest

from extensions import db
from services.ledger import entries as ledger
from tests.conftest import WEBHOOK_SECRET, login
from tests.support.payments import pay
from tests.support.stripe_events import event_payload, signature_header

pytestmark = pytest.mark.money


def create_intent(client, customer, amount=2500):
    return client.post("/v1/billing/payment-intents", json={"amount": amount},
                       headers=customer.headers)


def test_the_longest_idempotency_key_a_client_may_send_still_reaches_stripe(
        client, customer, stripe_client):
    """Tally's Stripe key for a top-up is `tally-topup-<account>-<the client's key>`: with a
    client key of 255 characters that was 293, and Stripe (the simulator too) refuses keys
    over 255. The top-up must still work, and two long keys stay two PaymentIntents."""
    first, second = "k" * 254 + "1", "k" * 254 + "2"
    made = [client.post("/v1/billing/payment-intents", json={"amount": 2500},
                        headers=customer.headers | {"Idempotency-Key": key})
            for key in (first, second)]
    assert [m.status_code for m in made] == [200, 200], [m.get_json() for m in made]
    ids = [m.get_json()["payment_intent_id"] for m in made]
    assert ids[0] != ids[1]
    assert pay(stripe_client, ids[0]) == "succeeded"
    confirmed = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                            json={"payment_intent_id": ids[0]})
    assert confirmed.get_json()["credited"] is True and balance_of(client, customer) == 2500
    # The page's top-up takes the same keys (the one Idempotency-Key store): the longest
    # reaches Stripe too, and a longer one is refused as the API refuses it.
    web = client.application.test_client()
    token = login(web, customer)
    page = web.post("/topup/intent", data={"amount": "25.00", "csrf_token": token},
                    headers={"Accept": "application/json", "Idempotency-Key": "p" * 255})
    assert page.status_code == 200 and page.get_json()["payment_intent_id"].startswith("pi_")
    too_long = web.post("/topup/intent", data={"amount": "25.00", "csrf_token": token},
                        headers={"Accept": "application/json", "Idempotency-Key": "p" * 256})
    assert too_long.status_code == 400 and too_long.get_json()["param"] == "Idempotency-Key"


def balance_of(client, customer) -> int:
    response = client.get("/v1/billing/balance", headers=customer.headers)
    assert response.status_code == 200
    return response.get_json()["balance"]


def assert_cache_matches_ledger(app, account_id: str) -> None:
    with app.app_context():
        assert ledger.current_balance(account_id) == ledger.ledger_sum(account_id)
        db.session.remove()


def test_top_up_credits_once_and_replays_are_harmless(app, client, customer, stripe_client):
    created = create_intent(client, customer, 2500)
    assert created.status_code == 200
    body = created.get_json()
    assert body["amount"] == 2500 and body["currency"] == "usd"
    assert body["client_secret"].startswith(body["payment_intent_id"])

    assert pay(stripe_client, body["payment_intent_id"]) == "succeeded"

    first = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                        json={"payment_intent_id": body["payment_intent_id"]})
    assert first.status_code == 200
    assert first.get_json() == {"success": True, "credited": True, "balance": 2500, "currency": "usd"}

    again = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                        json={"payment_intent_id": body["payment_intent_id"]})
    assert again.get_json() == {"success": True, "credited": False, "balance": 2500, "currency": "usd"}
    assert balance_of(client, customer) == 2500
    assert_cache_matches_ledger(app, customer.account_id)


def test_alias_endpoint_creates_intent(client, customer):
    response = client.post("/v1/billing/create-payment-intent", json={"amount": 1000},
                           headers=customer.headers)
    assert response.status_code == 200
    assert response.get_json()["payment_intent_id"].startswith("pi_")


@pytest.mark.parametrize("amount, code", [
    (499, "amount_out_of_range"),
    (100_001, "amount_out_of_range"),
    (-500, "amount_out_of_range"),
    (25.5, "invalid_request"),
    ("2500", "invalid_request"),
    (True, "invalid_request"),
    (None, "invalid_request"),
    (10**30, "amount_out_of_range"),
])
def test_bad_amounts_are_400_naming_the_field(client, customer, amount, code):
    response = create_intent(client, customer, amount)
    assert response.status_code == 400
    body = response.get_json()
    assert body["param"] == "amount" and body["code"] == code
    assert body["error"] and body["message"]


def test_missing_amount_and_bad_json(client, customer):
    missing = client.post("/v1/billing/payment-intents", json={}, headers=customer.headers)
    assert missing.status_code == 400 and missing.get_json()["param"] == "amount"
    broken = client.post("/v1/billing/payment-intents", data="{nope",
                         headers={**customer.headers, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.get_json()["code"] == "invalid_json"


def test_bounds_are_configurable(app, client, customer):
    app.config["TOPUP_MIN_AMOUNT"] = 100
    assert create_intent(client, customer, 100).status_code == 200


def test_unpaid_intent_is_refused_and_credits_nothing(app, client, customer):
    pi = create_intent(client, customer).get_json()["payment_intent_id"]
    response = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                           json={"payment_intent_id": pi})
    assert response.status_code == 409
    assert response.get_json()["code"] == "payment_intent_not_succeeded"
    assert balance_of(client, customer) == 0


def test_declined_card_credits_nothing(client, customer, stripe_client):
    pi = create_intent(client, customer).get_json()["payment_intent_id"]
    assert pay(stripe_client, pi, "pm_card_chargeCustomerFail") != "succeeded"
    response = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                           json={"payment_intent_id": pi})
    assert response.status_code == 409
    assert balance_of(client, customer) == 0


def test_another_accounts_payment_intent_cannot_be_confirmed_into_mine(
        app, client, make_customer, stripe_client):
    alice, mallory = make_customer("Alice"), make_customer("Mallory")
    pi = create_intent(client, alice).get_json()["payment_intent_id"]
    pay(stripe_client, pi)
    stolen = client.post("/v1/billing/confirm-payment", headers=mallory.headers,
                         json={"payment_intent_id": pi})
    assert stolen.status_code == 404
    assert stolen.get_json()["code"] == "resource_missing"
    assert balance_of(client, mallory) == 0
    # The owner still gets the credit.
    mine = client.post("/v1/billing/confirm-payment", headers=alice.headers,
                       json={"payment_intent_id": pi})
    assert mine.get_json()["credited"] is True


def test_payment_intent_not_created_by_tally_is_refused(client, customer, stripe_client):
    foreign = stripe_client.v1.payment_intents.create(params={
        "amount": 2500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True})
    assert foreign.status == "succeeded"
    for pi in (foreign.id, "pi_doesnotexist", "not-a-pi", 42):
        response = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                               json={"payment_intent_id": pi})
        assert response.status_code in (400, 404), pi
        assert set(response.get_json()) >= {"error", "code", "message"}
    assert balance_of(client, customer) == 0


def test_tampered_payment_intent_is_refused(client, customer, stripe_client):
    """A PaymentIntent whose amount changed at Stripe after Tally created it credits nothing."""
    pi = create_intent(client, customer, 2500).get_json()["payment_intent_id"]
    stripe_client.v1.payment_intents.update(pi, params={"amount": 100_000})
    pay(stripe_client, pi)
    response = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                           json={"payment_intent_id": pi})
    assert response.status_code == 409
    assert response.get_json()["code"] == "payment_intent_mismatch"
    assert balance_of(client, customer) == 0


# Webhooks -------------------------------------------------------------------

def deliver(client, payload: bytes, secret: str = WEBHOOK_SECRET, timestamp=None,
            path="/v1/billing/webhook"):
    return client.post(path, data=payload, headers={
        "Stripe-Signature": signature_header(payload, secret, timestamp),
        "Content-Type": "application/json"})


def test_webhook_credits_and_duplicates_do_nothing(app, client, customer, stripe_client,
                                                   localstripe_url):
    pi = create_intent(client, customer, 5000).get_json()["payment_intent_id"]
    pay(stripe_client, pi)
    payload = event_payload(localstripe_url, "payment_intent.succeeded", pi)

    first = deliver(client, payload)
    assert first.status_code == 200
    assert first.get_json()["status"] == "processed"
    second = deliver(client, payload, path="/billing/webhook")
    assert second.status_code == 200 and second.get_json()["status"] == "duplicate"
    assert balance_of(client, customer) == 5000

    # The confirm path afterwards finds it credited.
    late = client.post("/v1/billing/confirm-payment", headers=customer.headers,
                       json={"payment_intent_id": pi})
    assert late.get_json() == {"success": True, "credited": False, "balance": 5000, "currency": "usd"}
    assert_cache_matches_ledger(app, customer.account_id)


def test_webhook_with_bad_or_stale_signature_is_400_and_stores_nothing(
        app, client, customer, stripe_client, localstripe_url):
    from models import WebhookEvent

    pi = create_intent(client, customer).get_json()["payment_intent_id"]
    pay(stripe_client, pi)
    payload = event_payload(localstripe_url, "payment_intent.succeeded", pi)
    wrong_secret = deliver(client, payload, secret="whsec_wrong")
    stale = deliver(client, payload, timestamp=1_600_000_000)
    unsigned = client.post("/v1/billing/webhook", data=payload)
    for response in (wrong_secret, stale, unsigned):
        assert response.status_code == 400
        assert response.get_json()["code"] == "invalid_signature"
    with app.app_context():
        assert db.session.query(WebhookEvent).count() == 0
    assert balance_of(client, customer) == 0


UNREADABLE = [
    ("nested 100,000 deep",
     b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("nested in the object", b'{"id": "evt_deep2", "type": "invoice.paid", "data": {"object": '
     + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}}"),
    ("a list", b'[{"id": "evt_1", "type": "invoice.paid"}]'),
    ("not json", b"id=evt_1&type=invoice.paid"),
    ("no id", b'{"type": "invoice.paid", "data": {"object": {}}}'),
    ("an object for an id", b'{"id": {"evt": 1}, "type": "invoice.paid"}'),
    ("an id too long to store", b'{"id": "evt_' + b"x" * 300 + b'", "type": "invoice.paid"}'),
    ("a NUL in the id", b'{"id": "evt_\\u0000", "type": "invoice.paid"}'),
    ("a type too long to store", b'{"id": "evt_2", "type": "' + b"t" * 200 + b'"}'),
    ("data not an object", b'{"id": "evt_3", "type": "invoice.paid", "data": [1]}'),
]


@pytest.mark.money  # PostgreSQL refuses what SQLite stores (NUL, over-long text)
@pytest.mark.parametrize(("label", "payload"), UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_a_signed_body_tally_cannot_read_is_a_400_and_stores_nothing(app, client, backend, label,
                                                                     payload):
    from models import WebhookEvent

    response = deliver(client, payload)
    assert response.status_code == 400, (label, response.get_data()[:300])
    assert response.get_json()["code"] == "invalid_payload"
    with app.app_context():
        assert db.session.query(WebhookEvent).count() == 0


def test_unknown_event_types_are_stored_and_acknowledged(app, client):
    payload = b'{"id": "evt_unknown_1", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}'
    response = deliver(client, payload)
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
