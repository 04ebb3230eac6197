"""The Lit Protocol billing seed (shared/seeds/000_...): its four operations called exactly
as published, on both spellings of each path, with `X-Api-Key` or `Authorization: Bearer`,
or as a ChainSecured caller with `X-Wallet-Auth` (an EIP-712 BillingAuth signature)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import func, select

from extensions import db
from models import TopUp
from tests.conftest import csrf_token, login
from tests.support.payments import pay
from tests.support.threads import at_once
from tests.support.wallets import Wallet, auth_header

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


# ChainSecured wallet auth ----------------------------------------------------------------

def topup_count(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(TopUp))
        db.session.remove()
    return int(count or 0)


def linked_wallet(client, customer) -> Wallet:
    wallet = Wallet()
    # Its own message: a message used to link is used up, like one that authorized a change.
    linked = client.post("/v1/wallets", json=wallet.proof(nonce="link"), headers=customer.headers)
    assert linked.status_code == 201, linked.get_json()
    assert linked.get_json()["address"] == wallet.address
    assert linked.get_json()["account_id"] == customer.account_id
    return wallet


def test_a_linked_wallet_acts_as_an_account_key_through_lits_whole_flow(client, customer,
                                                                        stripe_client):
    wallet = linked_wallet(client, customer)
    listed = client.get("/v1/wallets", headers=customer.headers).get_json()
    assert [w["address"] for w in listed["data"]] == [wallet.address]

    created = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 700},
                          headers=wallet.header(nonce="create"))
    assert created.status_code == 200, created.get_json()
    intent = created.get_json()["payment_intent_id"]
    assert pay(stripe_client, intent) == "succeeded"
    confirmed = client.post("/v1/billing/confirm_payment", json={"payment_intent_id": intent},
                            headers=wallet.header(nonce="confirm"))
    assert confirmed.status_code == 200 and confirmed.get_json()["success"] is True
    balance = client.get("/v1/billing/balance", headers=wallet.header())
    assert balance.status_code == 200
    assert balance.get_json()["balance_cents"] == -700
    assert balance.get_json()["balance_display"] == "$7.00 credit"
    # The wallet's account, as an account key sees it.
    assert client.get("/v1/me", headers=wallet.header()).get_json()["account_id"] == customer.account_id


def test_a_signature_changes_state_once_and_a_replay_runs_nothing(app, client, customer):
    wallet = linked_wallet(client, customer)
    header = wallet.header()
    first = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 500},
                        headers=header)
    assert first.status_code == 200
    replay = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 500},
                         headers=header)
    assert replay.status_code == 401 and replay.get_json()["code"] == "wallet_signature_replayed"
    assert topup_count(app) == 1
    # A read changes nothing: the same signature may read again within its 5 minutes.
    for _ in range(2):
        assert client.get("/v1/billing/balance", headers=header).status_code == 200


def test_replays_racing_each_other_change_state_once(app, customer, live_server):
    wallet = Wallet()
    with app.test_client() as client:
        assert client.post("/v1/wallets", json=wallet.proof(nonce="link"),
                           headers=customer.headers).status_code == 201
    header = wallet.header()

    def create() -> int:
        request = urllib.request.Request(
            live_server.url + "/v1/billing/create_payment_intent", method="POST",
            data=json.dumps({"amount_cents": 500}).encode(),
            headers={**header, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert sorted(at_once([create] * 4)) == [200, 401, 401, 401]
    assert topup_count(app) == 1


@pytest.mark.parametrize("case, code", [
    ("wrong_domain", "wallet_domain_mismatch"),
    ("stale", "wallet_signature_expired"),
    ("future", "wallet_signature_not_yet_valid"),
    ("bad_signature", "wallet_signature_invalid"),
    ("unlinked", "wallet_not_linked"),
    ("not_base64", "wallet_auth_malformed"),
])
def test_each_refusal_is_a_401_with_its_own_code_and_runs_nothing(app, client, customer, case, code):
    wallet = linked_wallet(client, customer)
    now = int(time.time())
    header = {
        "wrong_domain": lambda: wallet.header(domain="Lit Protocol"),
        "stale": lambda: wallet.header(issued_at=now - 6 * 60),
        "future": lambda: wallet.header(issued_at=now + 6 * 60),
        # Another key signs a message that names this wallet.
        "bad_signature": lambda: auth_header(Wallet().proof(wallet.typed_data())),
        "unlinked": lambda: Wallet().header(),
        "not_base64": lambda: {"X-Wallet-Auth": "not base64 at all!"},
    }[case]()
    response = client.post("/v1/billing/create_payment_intent", json={"amount_cents": 500},
                           headers=header)
    assert response.status_code == 401
    assert response.get_json()["code"] == code and response.get_json()["message"]
    assert topup_count(app) == 0
    assert client.get("/v1/billing/balance", headers=header).status_code == 401


def test_the_domain_name_is_a_setting(app, client, customer):
    app.config["WALLET_AUTH_DOMAIN"] = "Lit Protocol"
    wallet = Wallet()
    assert client.post("/v1/wallets", json=wallet.proof(domain="Lit Protocol", nonce="link"),
                       headers=customer.headers).status_code == 201
    assert client.get("/v1/billing/balance",
                      headers=wallet.header(domain="Lit Protocol")).status_code == 200
    tally = client.get("/v1/billing/balance", headers=wallet.header(domain="Tally"))
    assert tally.status_code == 401 and tally.get_json()["code"] == "wallet_domain_mismatch"


def test_linking_proves_possession_once_and_a_wallet_has_one_account(client, make_customer):
    alice, mallory = make_customer("Alice"), make_customer("Mallory")
    wallet = Wallet()
    proof = wallet.proof()
    assert client.post("/v1/wallets", json=proof, headers=alice.headers).status_code == 201
    again = client.post("/v1/wallets", json=proof, headers=alice.headers)
    assert again.status_code == 400 and again.get_json()["code"] == "wallet_signature_replayed"
    taken = client.post("/v1/wallets", json=wallet.proof(nonce="2"), headers=mallory.headers)
    assert taken.status_code == 409 and taken.get_json()["code"] == "wallet_linked_elsewhere"
    forged = client.post("/v1/wallets", json=Wallet().proof(wallet.typed_data(nonce="3")),
                         headers=mallory.headers)
    assert forged.status_code == 400 and forged.get_json()["code"] == "wallet_signature_invalid"
    assert client.get("/v1/wallets", headers=mallory.headers).get_json()["data"] == []


def test_unlinking_stops_the_wallet_at_once(client, customer):
    wallet = linked_wallet(client, customer)
    other = client.delete(f"/v1/wallets/{Wallet().address}", headers=customer.headers)
    assert other.status_code == 404
    unlinked = client.delete(f"/v1/wallets/{wallet.address}", headers=wallet.header())
    assert unlinked.status_code == 200 and unlinked.get_json()["deleted"] is True
    refused = client.get("/v1/billing/balance", headers=wallet.header())
    assert refused.status_code == 401 and refused.get_json()["code"] == "wallet_not_linked"
    assert client.get("/v1/wallets", headers=customer.headers).get_json()["data"] == []


def test_a_wallet_caller_names_the_key_it_rotates(client, customer):
    wallet = linked_wallet(client, customer)
    response = client.post("/v1/keys/rotate", headers=wallet.header())
    assert response.status_code == 400 and response.get_json()["param"] == "key_id"
    assert client.get("/v1/me", headers=customer.headers).status_code == 200


def test_the_account_page_lists_links_and_unlinks_wallets(client, customer):
    login(client, customer)
    page = client.get("/account").get_data(as_text=True)
    assert "No wallets linked." in page
    wallet = Wallet()
    token = csrf_token(page)
    refused = client.post("/account/wallets", data={
        "csrf_token": token, "proof": json.dumps(wallet.proof(domain="Other"))})
    assert refused.status_code == 400 and "domain.name must be" in refused.get_data(as_text=True)
    linked = client.post("/account/wallets", data={
        "csrf_token": token, "proof": auth_header(wallet.proof(nonce="link"))["X-Wallet-Auth"]})
    assert linked.status_code == 303
    page = client.get("/account").get_data(as_text=True)
    assert wallet.address in page
    assert client.get("/v1/billing/balance", headers=wallet.header()).status_code == 200
    unlinked = client.post(f"/account/wallets/{wallet.address}/unlink", data={"csrf_token": token})
    assert unlinked.status_code == 303
    assert wallet.address not in client.get("/account").get_data(as_text=True)
    assert client.get("/v1/billing/balance", headers=wallet.header()).status_code == 401


def test_eth_account_leaves_deeply_nested_bodies_a_400(client, customer):
    """py_ecc (under eth-account) raises the recursion limit to 100000 when imported; left so,
    parsing this body overflowed the C stack and killed the process."""
    body = "[" * 200_000 + "]" * 200_000
    response = client.post("/v1/wallets", data=body, content_type="application/json",
                           headers=customer.headers)
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_json"
