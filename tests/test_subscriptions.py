"""Free to Pro and back through Stripe (localstripe): setup, cancel and resume, webhooks
twice and out of order, failed renewals and the grace period, Checkout and the Portal."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from datetime import timedelta
from functools import partial

import pytest
from pypdf import PdfReader

from extensions import db
from models.base import utcnow
from services import uow
from services.billing import subscriptions
from tests.conftest import WEBHOOK_SECRET, login
from tests.support import stripe_events
from tests.support.stripe_events import event_payload, signature_header
from tests.support.threads import at_once
from tests.test_concurrency import post

pytestmark = pytest.mark.money


def card(stripe_client, number: str = "4242424242424242") -> str:
    return stripe_client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034,
                                 "cvc": "123"}}).id


def upgrade(client, customer, stripe_client) -> dict:
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": card(stripe_client)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def deliver(client, payload: bytes) -> dict:
    return stripe_events.deliver(client, payload, WEBHOOK_SECRET)


def subscription(client, customer) -> dict:
    return client.get("/v1/billing/subscription", headers=customer.headers).get_json()


def test_setup_moves_to_pro_and_limits_change_at_once(client, customer, stripe_client):
    assert client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"][
        "apiCallsLimit"] == 1000
    body = upgrade(client, customer, stripe_client)
    assert body["tier"] == "pro" and body["call_limit"] is None and body["message"]
    usage = client.get("/v1/billing/usage", headers=customer.headers)
    assert usage.get_json()["usage"]["apiCallsLimit"] == 100000
    assert usage.headers["X-RateLimit-Limit"] == "600"
    sub = subscription(client, customer)
    assert sub["plan"] == "pro" and sub["status"] == "active" and sub["id"].startswith("sub_")
    assert sub["currentPeriodStart"] < sub["currentPeriodEnd"] and sub["cancelAtPeriodEnd"] is False
    # The first payment is mirrored as an invoice.
    invoices = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["invoices"]
    assert [(i["kind"], i["amount"], i["status"]) for i in invoices] == [("subscription", 4900, "paid")]
    # Subscribing twice is refused.
    again = client.post("/v1/billing/setup", headers=customer.headers,
                        json={"payment_method_id": card(stripe_client)})
    assert again.status_code == 409


def test_setup_with_a_declined_card_changes_nothing(client, customer, stripe_client):
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": card(stripe_client, "4000000000000002")})
    assert response.status_code == 402
    assert response.get_json()["message"] == (
        "Your card was declined. Nothing was charged; you are still on Free.")
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"
    for bad in ({}, {"payment_method_id": 5}, {"payment_method_id": "nope"}):
        response = client.post("/v1/billing/setup", headers=customer.headers, json=bad)
        assert response.status_code == 400 and response.get_json()["param"] == "payment_method_id"


def test_a_card_declined_at_the_first_charge_leaves_no_subscription(client, customer, stripe_client):
    # 4000 0000 0000 0341 attaches, then its first charge is declined.
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": card(stripe_client, "4000000000000341")})
    body = response.get_json()
    assert (response.status_code, body["code"]) == (402, "subscription_incomplete")
    assert body["message"] == ("Your card was declined. Nothing was charged; you are still on "
                               "Free. Try another card.")
    sub = subscription(client, customer)
    assert sub["status"] == "canceled"  # ended at Stripe too: nothing can charge it later
    assert stripe_client.v1.subscriptions.retrieve(sub["id"]).status == "canceled"
    assert owed_at_stripe(client, customer, stripe_client) == []  # its invoice is void
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"
    assert client.get("/v1/billing/invoices", headers=customer.headers).get_json()["data"] == []


THREE_D_SECURE = "4000002500003155"


def needs_action(client, customer, stripe_client) -> dict:
    """POST /v1/billing/setup with the 3-D Secure card: 402 requires_action, nothing changed."""
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": card(stripe_client, THREE_D_SECURE)})
    body = response.get_json()
    assert (response.status_code, body["code"], body["requires_action"]) == (
        402, "requires_action", True), body
    assert body["subscription_id"].startswith("sub_")
    assert body["payment_intent_client_secret"].startswith(body["payment_intent_id"] + "_secret_")
    assert "confirmCardPayment" in body["message"] and "/v1/billing/setup/confirm" in body["message"]
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"
    assert subscription(client, customer)["status"] == "incomplete"
    return body


def authenticate(stripe_client, required: dict, success: bool) -> None:
    """What Stripe.js confirmCardPayment does when the payer answers localstripe's 3-D Secure
    dialog: "Complete authentication" (success) or "Fail authentication"."""
    stripe_client.raw_request(
        "post", f"/v1/payment_intents/{required['payment_intent_id']}/_authenticate",
        client_secret=required["payment_intent_client_secret"], success=str(success).lower())


def confirm(client, customer, subscription_id: str):
    return client.post("/v1/billing/setup/confirm", headers=customer.headers,
                       json={"subscription_id": subscription_id})


@pytest.mark.parametrize("first", ["confirm", "webhook"])
def test_setup_with_3d_secure_then_confirm_upgrades_exactly_once(
        client, customer, make_customer, stripe_client, localstripe_url, first):
    required = needs_action(client, customer, stripe_client)
    sub_id = required["subscription_id"]
    # Before the payer answers the challenge: the same requires_action again, nothing changes.
    early = confirm(client, customer, sub_id)
    assert (early.status_code, early.get_json()["code"]) == (402, "requires_action")
    assert early.get_json()["payment_intent_client_secret"] == required["payment_intent_client_secret"]
    # Another account cannot finish (or learn about) this subscription.
    other = make_customer("Other")
    refused = confirm(client, other, sub_id)
    assert (refused.status_code, refused.get_json()["param"]) == (404, "subscription_id")
    assert confirm(client, customer, "nope").status_code == 400
    assert client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"][
        "apiCallsLimit"] == 1000

    authenticate(stripe_client, required, success=True)
    invoice_id = stripe_client.v1.subscriptions.retrieve(sub_id).latest_invoice
    webhooks = [event_payload(localstripe_url, "invoice.paid", invoice_id),
                event_payload(localstripe_url, "customer.subscription.updated", sub_id)]
    if first == "webhook":
        for payload in webhooks * 2:
            deliver(client, payload)
        assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "pro"
    answers = [confirm(client, customer, sub_id) for _ in range(2)]
    if first == "confirm":
        for payload in webhooks * 2:
            deliver(client, payload)

    for answer in answers:  # every confirm answers as a setup that needed no authentication
        body = answer.get_json()
        assert answer.status_code == 200, body
        assert body["tier"] == "pro" and body["call_limit"] is None and body["message"]
        assert body["subscription"]["id"] == sub_id and body["subscription"]["status"] == "active"
    assert client.get("/v1/billing/usage", headers=customer.headers).get_json()["usage"][
        "apiCallsLimit"] == 100000
    invoices = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["invoices"]
    assert [(i["kind"], i["amount"], i["status"]) for i in invoices] == [("subscription", 4900, "paid")]
    assert subscription(client, customer)["status"] == "active"


def test_confirms_and_webhooks_racing_after_3d_secure_upgrade_once(
        app, client, live_server, customer, stripe_client, localstripe_url):
    """Over real HTTP (localstripe delivers its own webhooks too): 6 confirms and 6
    deliveries of each event at once end in one active subscription and one invoice."""
    required = needs_action(client, customer, stripe_client)
    sub_id = required["subscription_id"]
    authenticate(stripe_client, required, success=True)
    invoice_id = stripe_client.v1.subscriptions.retrieve(sub_id).latest_invoice
    calls = []
    for _ in range(6):
        calls.append(partial(post, f"{live_server.url}/v1/billing/setup/confirm",
                             json.dumps({"subscription_id": sub_id}).encode(), customer.headers))
        for payload in (event_payload(localstripe_url, "invoice.paid", invoice_id),
                        event_payload(localstripe_url, "customer.subscription.updated", sub_id)):
            calls.append(partial(post, f"{live_server.url}/v1/billing/webhook", payload,
                                 {"Stripe-Signature": signature_header(payload, WEBHOOK_SECRET)}))

    results = at_once(calls)

    assert [status for status, _ in results] == [200] * len(calls), results
    confirms = [body for status, body in results if "tier" in body]
    assert len(confirms) == 6 and {(b["tier"], b["subscription"]["status"]) for b in confirms} == {
        ("pro", "active")}
    invoices = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["invoices"]
    assert [(i["kind"], i["amount"], i["status"]) for i in invoices] == [("subscription", 4900, "paid")]
    assert subscription(client, customer)["status"] == "active"
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "pro"


def owed_at_stripe(client, customer, stripe_client) -> list[tuple[str, int]]:
    """(status, amount_remaining) of the customer's invoices at Stripe that are not void."""
    stripe_id = client.get("/v1/billing", headers=customer.headers).get_json()[
        "stripe_customer_id"]
    listed = stripe_client.v1.invoices.list(params={"customer": stripe_id, "limit": 100}).data
    return [(i.status, i.amount_remaining) for i in listed if i.status != "void"]


def portal_invoice_rows(client, customer) -> str:
    """The invoice history of the customer's Stripe Customer Portal, as the customer sees it."""
    url = client.post("/v1/billing/portal", headers=customer.headers,
                      json={"returnUrl": "https://example.com/back"}).get_json()["url"]
    with urllib.request.urlopen(url, timeout=10) as page:
        html = page.read().decode()
    return html.split('data-testid="invoices">', 1)[1].split("</table>", 1)[0]


def test_setup_with_failed_3d_secure_changes_nothing_and_ends_the_subscription(
        client, customer, stripe_client):
    required = needs_action(client, customer, stripe_client)
    authenticate(stripe_client, required, success=False)
    assert owed_at_stripe(client, customer, stripe_client) == [("open", 4900)]

    failed = confirm(client, customer, required["subscription_id"])
    body = failed.get_json()
    assert (failed.status_code, body["code"]) == (402, "subscription_incomplete")
    assert body["message"].endswith("Nothing was charged; you are still on Free. Try another card.")
    assert stripe_client.v1.subscriptions.retrieve(required["subscription_id"]).status == "canceled"
    assert subscription(client, customer)["status"] == "canceled"
    # The $49 invoice is void, not left open: the customer owes nothing at Stripe either.
    assert owed_at_stripe(client, customer, stripe_client) == []
    first = stripe_client.v1.subscriptions.retrieve(required["subscription_id"]).latest_invoice
    assert stripe_client.v1.invoices.retrieve(str(first)).status == "void"
    assert stripe_client.v1.payment_intents.retrieve(required["payment_intent_id"]).status == \
        "canceled"
    assert "open" not in portal_invoice_rows(client, customer)
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"
    assert client.get("/v1/billing/invoices", headers=customer.headers).get_json()["data"] == []
    again = confirm(client, customer, required["subscription_id"])
    assert again.status_code == 402 and "Nothing was charged" in again.get_json()["message"]
    # Another card then upgrades as usual.
    assert upgrade(client, customer, stripe_client)["tier"] == "pro"


@pytest.mark.parametrize(("test_id", "last4"), [("pm_card_visa", "4242"),
                                                ("pm_card_mastercard", "4444")])
def test_setup_with_stripes_test_payment_method_ids(client, customer, stripe_client, test_id, last4):
    """Attaching `pm_card_visa` makes a new PaymentMethod: Tally subscribes with that one."""
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": test_id})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["tier"] == "pro"
    stripe_sub = stripe_client.v1.subscriptions.retrieve(subscription(client, customer)["id"])
    default = stripe_client.v1.customers.retrieve(str(stripe_sub.customer)).invoice_settings
    pm = stripe_client.v1.payment_methods.retrieve(str(default.default_payment_method))
    assert pm.id != test_id and pm.customer == stripe_sub.customer and pm.card.last4 == last4


def test_setup_with_the_3d_secure_test_id_asks_for_authentication(client, customer):
    response = client.post("/v1/billing/setup", headers=customer.headers,
                           json={"payment_method_id": "pm_card_threeDSecure2Required"})
    assert (response.status_code, response.get_json()["code"]) == (402, "requires_action")
    assert response.get_json()["payment_intent_client_secret"]


def test_a_payment_method_stripe_cannot_use_is_the_callers_fault(
        client, customer, make_customer, stripe_client):
    """Named by `param`, a 4xx, nothing charged; never a 502."""
    someone_elses = card(stripe_client)
    owner = stripe_client.v1.customers.create().id
    stripe_client.v1.payment_methods.attach(someone_elses, params={"customer": owner})
    for payment_method, status, code in (
            ("pm_card_nope", 404, "resource_missing"),
            ("pm_card_visa_chargeDeclined", 402, "card_declined"),
            (someone_elses, 400, "stripe_refused")):
        response = client.post("/v1/billing/setup", headers=customer.headers,
                               json={"payment_method_id": payment_method})
        body = response.get_json()
        assert (response.status_code, body["code"], body["param"]) == (
            status, code, "payment_method_id"), body
        assert body["message"].endswith("Nothing was charged; you are still on Free."), body
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"
    assert subscription(client, customer)["status"] == "none"


def test_stripes_invoice_number_beside_tallys_and_the_first_invoice_is_not_a_renewal(
        app, client, customer, stripe_client, localstripe_url):
    from tests.support.staff import make_staff, staff_login

    upgrade(client, customer, stripe_client)
    sub_id = subscription(client, customer)["id"]
    first_at_stripe = stripe_client.v1.invoices.retrieve(
        str(stripe_client.v1.subscriptions.retrieve(sub_id).latest_invoice))
    renewal_at_stripe = renew(localstripe_url, sub_id, "paid")
    deliver(client, event_payload(localstripe_url, "invoice.paid", renewal_at_stripe["id"]))

    listed = client.get("/v1/billing/invoices", headers=customer.headers).get_json()["data"]
    assert [(i["kind"], i["stripe_invoice_number"]) for i in listed] == [
        ("renewal", renewal_at_stripe["number"]), ("subscription", first_at_stripe.number)]
    assert first_at_stripe.number != renewal_at_stripe["number"] and listed[0]["number"] != \
        listed[1]["number"]
    first = client.get(f"/v1/invoices/{listed[1]['id']}", headers=customer.headers).get_json()
    assert first["stripe_invoice_number"] == first_at_stripe.number
    assert first["lines"] == [{"description": "1 \u00d7 Tally Pro (at $49.00 / month)",
                               "quantity": 1, "unit_amount": 4900, "amount": 4900}]
    # The invoice page and its PDF, as the customer sees them.
    login(client, customer)
    page = client.get(f"/billing/invoices/{listed[1]['id']}").get_data(as_text=True)
    assert f"Stripe invoice {first_at_stripe.number}" in page and listed[1]["number"] in page
    index = client.get("/billing/invoices").get_data(as_text=True)
    assert "Subscription renewal" in index and ">Subscription<" in index
    pdf = client.get(f"/billing/invoices/{listed[1]['id']}/pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert f"Stripe invoice {first_at_stripe.number}" in text and listed[1]["number"] in text
    # Support finds it in the staff console.
    staff = make_staff(app, "billing-support@tally.test")
    console = app.test_client()
    staff_login(console, staff)
    with app.app_context():
        from models import Account
        customer_id = db.session.get(Account, customer.account_id).customer_id
        db.session.remove()
    html = console.get(f"/staff/customers/{customer_id}").get_data(as_text=True)
    for number in (first_at_stripe.number, renewal_at_stripe["number"]):
        assert f"Stripe <code class=\"invoice-number\">{number}</code>" in html
    assert html.count('<span class="muted">subscription</span>') == 1
    assert html.count('<span class="muted">subscription renewal</span>') == 1


def test_cancel_at_period_end_and_resume(client, customer, stripe_client):
    upgrade(client, customer, stripe_client)
    cancelled = client.post("/v1/billing/cancel", headers=customer.headers).get_json()
    sub = subscription(client, customer)
    assert cancelled["success"] is True and cancelled["cancelAt"] == sub["currentPeriodEnd"]
    assert sub["cancelAtPeriodEnd"] is True and sub["status"] == "active"
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "pro"
    login(client, customer)
    page = client.get("/plans").get_data(as_text=True)
    assert "Cancelled: you keep Pro until" in page and "Resume Pro" in page
    resumed = client.post("/v1/billing/resume", headers=customer.headers).get_json()
    assert resumed["success"] is True and subscription(client, customer)["cancelAtPeriodEnd"] is False
    assert "Renews on" in client.get("/plans").get_data(as_text=True)


def test_cancel_without_a_subscription_is_404(client, customer):
    response = client.post("/v1/billing/cancel", headers=customer.headers)
    assert response.status_code == 404 and response.get_json()["code"] == "no_subscription"


def test_webhooks_twice_and_out_of_order_end_in_stripes_state(
        app, client, customer, stripe_client, localstripe_url):
    upgrade(client, customer, stripe_client)
    sub_id = subscription(client, customer)["id"]
    created = event_payload(localstripe_url, "customer.subscription.created", sub_id)
    stripe_client.v1.subscriptions.update(sub_id, params={"cancel_at_period_end": True})
    updated = event_payload(localstripe_url, "customer.subscription.updated", sub_id)
    # Newest first, then the older one, each twice: the state is Stripe's current one.
    for payload in (updated, updated, created, created):
        deliver(client, payload)
    assert subscription(client, customer)["cancelAtPeriodEnd"] is True
    stripe_client.v1.subscriptions.cancel(sub_id)
    deleted = event_payload(localstripe_url, "customer.subscription.deleted", sub_id)
    for payload in (deleted, updated, created, deleted):
        deliver(client, payload)
    assert subscription(client, customer)["status"] == "canceled"
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"


def renew(localstripe_url: str, subscription_id: str, outcome: str) -> dict:
    request = urllib.request.Request(
        f"{localstripe_url}/_ext/subscriptions/{subscription_id}/renew",
        data=json.dumps({"outcome": outcome}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk_test_tally"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_failed_renewal_is_past_due_with_a_banner_then_free_after_grace(
        app, client, customer, stripe_client, localstripe_url):
    upgrade(client, customer, stripe_client)
    sub_id = subscription(client, customer)["id"]
    invoice = renew(localstripe_url, sub_id, "failed")
    deliver(client, event_payload(localstripe_url, "invoice.payment_failed", invoice["id"]))
    assert subscription(client, customer)["status"] == "past_due"
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "pro"
    login(client, customer)
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="past-due-banner"' in page and "Fix the card" in page
    with app.app_context():
        assert subscriptions.end_expired_grace(utcnow() + timedelta(days=1)) == 0
        assert subscriptions.end_expired_grace(utcnow() + timedelta(days=8)) == 1
        uow.commit()
        db.session.remove()
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "free"
    # The customer fixes the card: the next renewal is paid, Pro comes back, invoice mirrored.
    paid = renew(localstripe_url, sub_id, "paid")
    deliver(client, event_payload(localstripe_url, "invoice.paid", paid["id"]))
    assert client.get("/v1/me", headers=customer.headers).get_json()["tier"] == "pro"
    assert 'data-testid="past-due-banner"' not in client.get("/").get_data(as_text=True)
    kinds = [i["kind"] for i in client.get("/v1/billing/invoices",
                                           headers=customer.headers).get_json()["invoices"]]
    assert kinds == ["renewal", "subscription"]  # newest first


def test_checkout_and_portal_urls(client, customer, localstripe_url):
    plans = client.get("/v1/billing/plans", headers=customer.headers).get_json()["data"]
    pro = next(p for p in plans if p["name"] == "pro")
    assert pro["price"]["amount"] == 4900 and pro["price"]["priceId"].startswith("price_")
    checkout = client.post("/v1/billing/checkout", headers=customer.headers, json={
        "priceId": pro["price"]["priceId"], "successUrl": "https://example.com/ok",
        "cancelUrl": "https://example.com/no"})
    assert checkout.status_code == 200 and checkout.get_json()["url"].startswith(localstripe_url)
    for bad, param in (({"priceId": "price_nope", "successUrl": "https://a.b", "cancelUrl": "https://a.b"},
                        "priceId"),
                       ({"priceId": pro["price"]["priceId"], "successUrl": "javascript:x",
                         "cancelUrl": "https://a.b"}, "successUrl")):
        response = client.post("/v1/billing/checkout", headers=customer.headers, json=bad)
        assert response.status_code == 400 and response.get_json()["param"] == param
    portal = client.post("/v1/billing/portal", headers=customer.headers,
                         json={"returnUrl": "https://example.com/back"})
    assert portal.status_code == 200 and portal.get_json()["url"].startswith(localstripe_url)
    bad = client.post("/v1/billing/portal", headers=customer.headers, json={"returnUrl": "nope"})
    assert bad.status_code == 400 and bad.get_json()["param"] == "returnUrl"


def test_staff_manage_portal_configurations(app, client, customer):
    out = app.test_cli_runner().invoke(args=["create-staff", "--email", "ops@tally.test",
                                             "--password", "staff-pass-123"]).output
    staff = {"X-Api-Key": json.loads(out)["api_key"]}
    assert client.get("/v1/billing-portal/configurations", headers=customer.headers).status_code == 403
    created = client.post("/v1/billing-portal/configurations", headers=staff, json={
        "headline": "Acme billing", "features": {
            "subscription_cancel": {"enabled": True, "mode": "immediately"},
            "subscription_update": {"enabled": True, "proration_behavior": "create_prorations"},
            "invoice_history": {"enabled": True}}})
    assert created.status_code == 201, created.get_json()
    config = created.get_json()
    assert config["object"] == "billing_portal.configuration" and config["id"].startswith("bpc_")
    assert config["features"]["subscription_cancel"]["mode"] == "immediately"
    assert config["features"]["subscription_update"]["proration_behavior"] == "create_prorations"
    listed = client.get("/v1/billing-portal/configurations", headers=staff).get_json()
    assert config["id"] in [c["id"] for c in listed["data"]]
    updated = client.post(f"/v1/billing-portal/configurations/{config['id']}", headers=staff, json={
        "features": {"subscription_cancel": {"enabled": False}}})
    assert updated.status_code == 200
    fetched = client.get(f"/v1/billing-portal/configurations/{config['id']}", headers=staff).get_json()
    assert fetched["features"]["subscription_cancel"]["enabled"] is False
    for bad, param in (({"features": {"subscription_cancel": {"enabled": True, "mode": "never"}}},
                        "features.subscription_cancel.mode"),
                       ({"features": {"teleport": {"enabled": True}}}, "features.teleport"),
                       ({"features": {"invoice_history": {"enabled": "yes"}}},
                        "features.invoice_history.enabled")):
        response = client.post("/v1/billing-portal/configurations", headers=staff, json=bad)
        assert response.status_code == 400 and response.get_json()["param"] == param
    missing = client.get("/v1/billing-portal/configurations/bpc_nope", headers=staff)
    assert missing.status_code == 404


def test_staff_portal_page(app, client, make_customer):
    from tests.conftest import csrf_token

    app.test_cli_runner().invoke(args=["create-staff", "--email", "ops2@tally.test",
                                       "--password", "staff-pass-123"])
    token = csrf_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": "ops2@tally.test", "password": "staff-pass-123",
                                "csrf_token": token})
    page = client.get("/staff/billing-portal/")
    assert page.status_code == 200 and "New configuration" in page.get_data(as_text=True)
    before = page.get_data(as_text=True).count('data-testid="portal-config"')
    token = csrf_token(page.get_data(as_text=True))
    created = client.post("/staff/billing-portal/", data={
        "csrf_token": token, "headline": "Acme", "invoice_history": "on",
        "subscription_cancel": "on", "cancel_mode": "immediately", "proration": "none"})
    assert created.status_code == 303
    html = client.get("/staff/billing-portal/").get_data(as_text=True)
    assert html.count('data-testid="portal-config"') == before + 1
    assert 'value="immediately" selected' in html
    bad = client.post("/staff/billing-portal/", data={"csrf_token": token, "invoice_history": "on",
                                                     "cancel_mode": "sometimes"})
    assert bad.status_code == 400 and "mode must be" in bad.get_data(as_text=True)
    # A customer gets 404.
    customer = make_customer()
    other = app.test_client()
    login(other, customer)
    assert other.get("/staff/billing-portal/").status_code == 404
