"""The generic billing API seed (shared/seeds/004_...): its paths without /v1, called with
`Authorization: Bearer <token>`, answer exactly as the /v1/billing endpoints do, while a
browser keeps its pages at the same URLs and its session never authorizes the JSON form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import WEBHOOK_SECRET, login
from tests.support.payments import pay
from tests.support.stripe_events import event_payload, signature_header
from tests.support.wallets import Wallet

pytestmark = pytest.mark.money

# The seed's config.json, exactly as published.
SEED_CONFIG = {"billing": {"plans": {
    "free": {"apiCalls": 1000, "llmTokens": 10000, "storage": 104857600},
    "pro": {"apiCalls": 100000, "llmTokens": 1000000, "storage": 10737418240},
}}}


def bearer(customer) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer.api_key}"}


@pytest.mark.parametrize("name", ["subscription", "usage", "invoices"])
def test_gets_answer_as_v1_does(client, customer, name):
    generic = client.get(f"/billing/{name}", headers=bearer(customer))
    v1 = client.get(f"/v1/billing/{name}", headers=bearer(customer))
    assert generic.status_code == 200 and generic.mimetype == "application/json"
    assert generic.get_json() == v1.get_json()
    assert generic.headers["X-RateLimit-Limit"] == v1.headers["X-RateLimit-Limit"]


def test_the_seeds_fields_are_there(client, customer):
    sub = client.get("/billing/subscription", headers=bearer(customer)).get_json()
    assert {"id", "plan", "status", "currentPeriodStart", "currentPeriodEnd",
            "cancelAtPeriodEnd"} <= set(sub)
    usage = client.get("/billing/usage", headers=bearer(customer)).get_json()
    assert usage["usage"]["apiCallsLimit"] == 1000 and "period" in usage
    invoices = client.get("/billing/invoices", headers=bearer(customer)).get_json()
    assert invoices["invoices"] == []


def test_checkout_portal_and_cancel_over_the_generic_paths(client, customer, stripe_client):
    price_id = next(p["price"]["priceId"] for p in client.get(
        "/v1/billing/plans", headers=bearer(customer)).get_json()["data"] if p["price"])
    checkout = client.post("/billing/checkout", headers=bearer(customer), json={
        "priceId": price_id, "successUrl": "https://app.example.com/success",
        "cancelUrl": "https://app.example.com/cancel"})
    assert checkout.status_code == 200, checkout.get_json()
    assert checkout.get_json()["url"].startswith("http")

    portal = client.post("/billing/portal", headers=bearer(customer),
                         json={"returnUrl": "https://app.example.com/settings"})
    assert portal.status_code == 200, portal.get_json()
    assert portal.get_json()["url"].startswith("http")

    # Nothing to cancel yet: the /v1 endpoint's 404, in the API's error shape.
    nothing = client.post("/billing/cancel", headers=bearer(customer))
    assert nothing.status_code == 404 and nothing.get_json()["code"]
    setup = client.post("/v1/billing/setup", headers=bearer(customer),
                        json={"payment_method_id": "pm_card_visa"})
    assert setup.status_code == 200, setup.get_json()
    retry = {**bearer(customer), "Idempotency-Key": "cancel-1"}
    cancelled = client.post("/billing/cancel", headers=retry)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["success"] is True and cancelled.get_json()["cancelAt"]
    replayed = client.post("/v1/billing/cancel", headers=retry)  # the same operation
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_json() == cancelled.get_json()


def test_webhook_with_a_bearer_is_the_v1_webhook(client, customer, stripe_client, localstripe_url):
    intent = client.post("/v1/billing/payment-intents", json={"amount": 1000},
                         headers=customer.headers).get_json()["payment_intent_id"]
    pay(stripe_client, intent)
    payload = event_payload(localstripe_url, "payment_intent.succeeded", intent)
    response = client.post("/billing/webhook", data=payload, headers={
        **bearer(customer), "Content-Type": "application/json",
        "Stripe-Signature": signature_header(payload, WEBHOOK_SECRET)})
    assert response.status_code == 200 and response.get_json()["status"] == "processed"


def test_api_errors_are_the_apis(client, make_customer):
    bad = client.get("/billing/subscription", headers={"Authorization": "Bearer tly_" + "a" * 40})
    assert bad.status_code == 401 and bad.get_json()["code"] == "invalid_api_key"
    bad_post = client.post("/billing/cancel", headers={"X-Api-Key": "nope"})
    assert bad_post.status_code == 401 and bad_post.get_json()["code"] == "invalid_api_key"
    customer = make_customer()
    usage_key = client.post("/v1/keys", json={"kind": "usage", "name": "meter"},
                            headers=customer.headers).get_json()["api_key"]
    scoped = client.get("/billing/subscription", headers={"X-Api-Key": usage_key})
    assert scoped.status_code == 403 and scoped.get_json()["code"] == "key_scope"
    junk = client.post("/billing/portal", headers=bearer(customer), data="{",
                       content_type="application/json")
    assert junk.status_code == 400 and junk.get_json()["code"] == "invalid_json"


def test_a_browser_keeps_its_pages_and_its_session_never_authorizes_json(client, customer):
    assert client.get("/billing/invoices").status_code == 302  # to the login page
    login(client, customer)
    page = client.get("/billing/invoices")
    assert page.status_code == 200 and page.mimetype == "text/html"
    as_json = {"Accept": "application/json"}
    sub = client.get("/billing/subscription", headers=as_json)
    assert sub.status_code == 303 and sub.headers["Location"].endswith("/plans")
    assert client.get("/billing/usage", headers=as_json).headers["Location"].endswith("/usage")
    # A JSON post with only the cookie is the page's form without its CSRF token: refused.
    posted = client.post("/billing/portal", json={"returnUrl": "https://app.example.com/"},
                         headers=as_json)
    assert posted.status_code == 400 and "url" not in (posted.get_json() or {})


def test_the_seeds_plans_file_loads_unchanged(tmp_path: Path):
    from app import create_app

    path = tmp_path / "config.json"
    path.write_text(json.dumps(SEED_CONFIG))
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "TALLY_CONFIG_FILE": str(path),
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 't.db'}"})
    with app.app_context():
        from services.billing import plans

        assert plans.plan_for("free").limits == SEED_CONFIG["billing"]["plans"]["free"]
        assert plans.plan_for("pro").limits == SEED_CONFIG["billing"]["plans"]["pro"]


def test_a_wallet_signature_is_an_api_credential_there_too(client, customer):
    wallet = Wallet()
    assert client.post("/v1/wallets", json=wallet.proof(nonce="link"),
                       headers=customer.headers).status_code == 201
    generic = client.get("/billing/subscription", headers=wallet.header())
    assert generic.status_code == 200
    assert generic.get_json() == client.get("/v1/billing/subscription",
                                            headers=customer.headers).get_json()
