"""The test/demo extension of localstripe (devtools/localstripe_ext), through real clients:
the ``stripe`` library for the API, and Chromium for the extended Stripe.js and the hosted
Checkout and Customer Portal pages."""

from __future__ import annotations

import ast
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from tests.e2e.helpers import DECLINED, THREE_D_SECURE, VISA, chromium
from tests.support.localstripe import (
    STRIPE_JS_PATH,
    register_webhook,
    running_localstripe,
    simulate_renewal,
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_localstripe() as url:
        yield url


def make_client(base_url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_x", base_addresses={"api": base_url}, max_network_retries=0)


@pytest.fixture(scope="module")
def client(base_url: str) -> stripe.StripeClient:
    return make_client(base_url)


def card_data(number: str) -> dict[str, Any]:
    return {
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
    }


def card(client: stripe.StripeClient, number: str) -> str:
    return client.v1.payment_methods.create(params=card_data(number)).id


def payment_intent(client: stripe.StripeClient, **params: Any) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd", **params})


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A throwaway HTTP server on 127.0.0.1 in a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


# --- The API, through the stripe library -------------------------------------------------


def test_visa_confirmed_through_the_api_succeeds(client: stripe.StripeClient) -> None:
    created = payment_intent(client, payment_method=card(client, VISA), confirm=True)
    assert created.status == "succeeded"

    modified = payment_intent(client)
    client.v1.payment_intents.update(modified.id, params={"payment_method": card(client, VISA)})
    assert client.v1.payment_intents.confirm(modified.id).status == "succeeded"


@pytest.mark.parametrize("number", [DECLINED, "4000000000000341"])
def test_declined_card_confirmed_through_the_api_fails(
    client: stripe.StripeClient, number: str
) -> None:
    with pytest.raises(stripe.CardError) as raised:
        payment_intent(client, payment_method=card(client, number), confirm=True)

    assert raised.value.http_status == 402
    assert raised.value.code == "card_declined"
    assert raised.value.error is not None
    assert raised.value.error.decline_code == "generic_decline"
    assert raised.value.error.payment_intent is not None
    pi = client.v1.payment_intents.retrieve(raised.value.error.payment_intent.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error is not None
    assert pi.last_payment_error.code == "card_declined"


def test_declined_card_modify_then_confirm_fails(client: stripe.StripeClient) -> None:
    pi = payment_intent(client)
    client.v1.payment_intents.update(pi.id, params={"payment_method": card(client, DECLINED)})
    with pytest.raises(stripe.CardError, match="Your card was declined"):
        client.v1.payment_intents.confirm(pi.id)
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"


def test_two_instances_do_not_share_state(client: stripe.StripeClient, base_url: str) -> None:
    pickle = Path("/tmp/localstripe.pickle")  # localstripe's fixed dump file
    before = pickle.stat().st_mtime_ns if pickle.exists() else None
    mine = client.v1.customers.create(params={"email": "one@example.com"})

    with running_localstripe() as other_url:
        assert other_url != base_url
        other = make_client(other_url)
        with pytest.raises(stripe.InvalidRequestError):
            other.v1.customers.retrieve(mine.id)
        theirs = other.v1.customers.create(params={"email": "two@example.com"})
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.customers.retrieve(theirs.id)

    assert client.v1.customers.retrieve(mine.id).email == "one@example.com"
    assert (pickle.stat().st_mtime_ns if pickle.exists() else None) == before


def test_extended_stripe_js_is_served_without_auth(base_url: str) -> None:
    with urllib.request.urlopen(base_url + STRIPE_JS_PATH, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/javascript")
        script = response.read().decode()
    assert "const LOCALSTRIPE_BASE_API" in script  # localstripe's own script
    assert "window.Stripe.localstripeExtension = 'tally'" in script  # then the overrides
    assert script.index("LOCALSTRIPE_BASE_API") < script.index("localstripeExtension")


def test_confirm_endpoint_checks_the_client_secret(
    client: stripe.StripeClient, base_url: str
) -> None:
    pi = payment_intent(client)
    url = f"{base_url}/js.stripe.com/tally/payment_intents/{pi.id}/confirm"
    data = card_data(VISA)

    status, _ = post_json(
        url,
        {"key": "pk_test_x", "client_secret": pi.id + "_secret_nope", "payment_method_data": data},
    )
    assert status == 401
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"

    status, body = post_json(
        url, {"key": "pk_test_x", "client_secret": pi.client_secret, "payment_method_data": data}
    )
    assert (status, body["status"]) == (200, "succeeded")


def test_confirm_endpoint_emits_payment_intent_succeeded() -> None:
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    secret = "whsec_test_tally"
    with (
        serving(Receiver) as hook_url,
        running_localstripe(webhook_url=hook_url + "/stripe/webhook", webhook_secret=secret) as url,
    ):
        client = make_client(url)
        pi = payment_intent(client)
        status, _ = post_json(
            f"{url}/js.stripe.com/tally/payment_intents/{pi.id}/confirm",
            {
                "key": "pk_test_x",
                "client_secret": pi.client_secret,
                "payment_method_data": card_data(VISA),
            },
        )
        assert status == 200
        deadline = time.monotonic() + 10  # localstripe waits 1 s before each delivery
        events: list[stripe.Event] = []
        while time.monotonic() < deadline and not any(
            e.type == "payment_intent.succeeded" for e in events
        ):
            time.sleep(0.1)
            events = [stripe.Webhook.construct_event(b, s, secret) for b, s in list(received)]

    succeeded = [e for e in events if e.type == "payment_intent.succeeded"]
    assert [e.data.object.id for e in succeeded] == [pi.id]


def test_register_webhook_helper(base_url: str) -> None:
    register_webhook(base_url, "http://127.0.0.1:9/unused", "whsec_x", id="unused")
    with pytest.raises(urllib.error.HTTPError):
        register_webhook(base_url, "not-a-url", "whsec_x", id="unused")


def test_answers_in_the_pinned_api_version_only(client: stripe.StripeClient, base_url: str) -> None:
    pi = payment_intent(client)
    event = client.v1.events.list(params={"limit": 100}).data[-1]
    assert event.api_version == "2026-10-28.endive" == stripe.api_version
    older = stripe.StripeClient("sk_test_x", base_addresses={"api": base_url},
                                stripe_version="2020-08-27", max_network_retries=0)
    with pytest.raises(stripe.InvalidRequestError, match=r"only in Stripe API version "
                                                         r"2026-10-28\.endive") as refused:
        older.v1.payment_intents.retrieve(pi.id)
    assert refused.value.http_status == 400 and refused.value.param == "Stripe-Version"


def test_the_app_never_imports_the_simulator() -> None:
    """It is test support: a separate process the app reaches over HTTP only."""
    root = Path(__file__).resolve().parents[1]
    app_files = [root / "app.py", root / "config.py", root / "extensions.py",
                 *[f for part in ("models", "services", "views") for f in (root / part).rglob("*.py")]]
    imports = []
    for path in app_files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            imports += [f"{path.relative_to(root)}: {n}" for n in names
                        if n.split(".")[0] in ("localstripe", "devtools")]
    assert len(app_files) > 20 and imports == []


def test_endpoints_the_version_removed_are_gone(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create().id
    with pytest.raises(stripe.InvalidRequestError, match="create_preview") as gone:
        client.raw_request("get", "/v1/invoices/upcoming", customer=customer)
    assert gone.value.http_status == 404


def test_payment_intents_take_the_versions_parameter_names(client: stripe.StripeClient) -> None:
    """2026-10-28.endive creates a PaymentIntent with `allowed_payment_method_types`; the
    old `payment_method_types` is a parameter Stripe no longer knows."""
    made = client.v1.payment_intents.create(params={
        "amount": 700, "currency": "usd", "allowed_payment_method_types": ["card"]})
    assert made.payment_method_types == ["card"]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.create(params={  # type: ignore[typeddict-unknown-key]
            "amount": 700, "currency": "usd", "payment_method_types": ["card"]})
    assert refused.value.code == "parameter_unknown"
    assert refused.value.param == "payment_method_types"


def test_stripes_test_payment_method_ids_become_new_payment_methods(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create().id
    attached = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
    assert attached.id.startswith("pm_") and attached.id != "pm_card_visa"
    assert (attached.customer, attached.card.last4) == (customer, "4242")
    # The test id itself is not the customer's: Stripe makes a new card each time.
    with pytest.raises(stripe.InvalidRequestError, match="pm_card_visa"):
        client.v1.customers.update(customer, params={
            "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    three_d = client.v1.payment_methods.attach("pm_card_threeDSecure2Required",
                                               params={"customer": customer})
    assert three_d.card.last4 == "3220"
    with pytest.raises(stripe.InvalidRequestError, match="No such PaymentMethod"):
        client.v1.payment_methods.attach("pm_card_nope", params={"customer": customer})


# --- Stripe.js in Chromium ---------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="{script}"></script></head>
<body>
<div id="card"></div>
<script>
  const stripe = Stripe('pk_test_tally');
  const card = stripe.elements().create('card');
  card.mount('#card');
  const calls = {{
    pay: (secret, pm) => stripe.confirmCardPayment(secret, {{payment_method: pm || {{
      card, billing_details: {{name: 'Ada Lovelace'}}}}}}),
    payAsIs: (secret) => stripe.confirmCardPayment(secret),
    setup: (secret) => stripe.confirmCardSetup(secret, {{payment_method: {{card}}}}),
    createPaymentMethod: () => stripe.createPaymentMethod({{
      type: 'card', card, billing_details: {{email: 'ada@example.com'}}}}),
  }};
  window.start = (name, args) => {{
    window.result = undefined;
    calls[name](...args).then(r => {{ window.result = r; }},
                              e => {{ window.result = {{thrown: String(e)}}; }});
  }};
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def page_url(base_url: str) -> Iterator[str]:
    """The shop page, on an origin of its own, as the Tally app would serve it."""
    html = PAGE.format(script=base_url + STRIPE_JS_PATH).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Page) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, page_url: str) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(page_url)
    yield page
    context.close()


def run(page: Any, call: str, *args: str, number: str = VISA, click: str | None = None) -> Any:
    """Type ``number`` into the card element, call ``calls[call](...args)`` on the page,
    click ``click`` in the 3-D Secure modal, and return what the promise resolved to."""
    for field, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
    ):
        page.fill(f"#card input[placeholder={field}]", value)
    page.evaluate("([call, args]) => start(call, args)", [call, list(args)])
    if click:
        page.get_by_role("button", name=click).click()
    page.wait_for_function("window.result !== undefined", timeout=10_000)
    return page.evaluate("window.result")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("number", "click", "status", "error_code"),
    [
        (VISA, None, "succeeded", None),
        (DECLINED, None, "requires_payment_method", "card_declined"),
        ("4000000000000341", None, "requires_payment_method", "card_declined"),
        (THREE_D_SECURE, "Complete authentication", "succeeded", None),
        (
            THREE_D_SECURE,
            "Fail authentication",
            "requires_payment_method",
            "payment_intent_authentication_failure",
        ),
    ],
)
def test_confirm_card_payment(
    page: Any,
    client: stripe.StripeClient,
    number: str,
    click: str | None,
    status: str,
    error_code: str | None,
) -> None:
    pi = payment_intent(client)

    result = run(page, "pay", pi.client_secret, number=number, click=click)

    if error_code is None:
        assert "error" not in result
        assert result["paymentIntent"]["id"] == pi.id
        assert result["paymentIntent"]["status"] == status
    else:
        error = result["error"]
        assert error["code"] == error_code
        assert error["payment_intent"]["status"] == status
        if error_code == "card_declined":
            assert error["type"] == "card_error"
            assert error["decline_code"] == "generic_decline"
            assert error["message"] == "Your card was declined."
        else:
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith("We are unable to authenticate")
    assert client.v1.payment_intents.retrieve(pi.id).status == status


@pytest.mark.e2e
def test_stripe_js_adds_only_stripe_to_the_page(page: Any) -> None:
    """Real Stripe.js adds only `Stripe`; localstripe's script alone also declares a global
    `class Element`, which hid the DOM's `Element` from every script on the page."""
    assert page.evaluate("document.body instanceof Element && Element === window.Element")
    assert page.evaluate("typeof Stripe === 'function' && typeof openModal === 'undefined'")


@pytest.mark.e2e
def test_confirm_card_payment_retry_after_decline(page: Any, client: stripe.StripeClient) -> None:
    pi = payment_intent(client)
    assert run(page, "pay", pi.client_secret, number=DECLINED)["error"]["code"] == "card_declined"
    assert run(page, "pay", pi.client_secret)["paymentIntent"]["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("number", "confirm", "click"),
    [(VISA, False, None), (THREE_D_SECURE, True, "Complete authentication")],
)
def test_confirm_card_payment_without_data_uses_the_intents_payment_method(
    page: Any, client: stripe.StripeClient, number: str, confirm: bool, click: str | None
) -> None:
    pi = payment_intent(client, payment_method=card(client, number), confirm=confirm)
    assert pi.status == ("requires_action" if confirm else "requires_confirmation")

    result = run(page, "payAsIs", pi.client_secret, click=click)

    assert result["paymentIntent"]["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


@pytest.mark.e2e
def test_incomplete_card_is_a_validation_error_without_request(
    page: Any, client: stripe.StripeClient
) -> None:
    pi = payment_intent(client)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    result = run(page, "pay", pi.client_secret, number="4242")

    assert result == {
        "error": {
            "type": "validation_error",
            "code": "incomplete_number",
            "message": "Your card number is incomplete.",
        }
    }
    assert requests == []
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"


@pytest.mark.e2e
def test_create_payment_method_then_confirm_with_its_id(
    page: Any, client: stripe.StripeClient
) -> None:
    created = run(page, "createPaymentMethod")["paymentMethod"]
    assert created["id"].startswith("pm_")
    assert created["card"]["last4"] == "4242"
    assert created["billing_details"]["email"] == "ada@example.com"

    pi = payment_intent(client)
    result = run(page, "pay", pi.client_secret, created["id"])
    assert result["paymentIntent"]["status"] == "succeeded"
    assert client.v1.payment_intents.retrieve(pi.id).payment_method == created["id"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("number", "click", "status", "error_code"),
    [
        (VISA, None, "succeeded", None),
        (DECLINED, None, "requires_payment_method", "card_declined"),
        (THREE_D_SECURE, "Complete authentication", "succeeded", None),
        (
            THREE_D_SECURE,
            "Fail authentication",
            "requires_payment_method",
            "setup_intent_authentication_failure",
        ),
    ],
)
def test_confirm_card_setup(
    page: Any,
    client: stripe.StripeClient,
    number: str,
    click: str | None,
    status: str,
    error_code: str | None,
) -> None:
    customer = client.v1.customers.create()
    seti = client.v1.setup_intents.create(params={"customer": customer.id})

    result = run(page, "setup", seti.client_secret, number=number, click=click)

    saved = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    if error_code is None:
        assert result["setupIntent"]["status"] == status
        assert [pm.id for pm in saved.data] == [result["setupIntent"]["payment_method"]]
    else:
        assert result["error"]["code"] == error_code
        assert result["error"]["setup_intent"]["status"] == status
        assert saved.data == []
    assert client.v1.setup_intents.retrieve(seti.id).status == status


# --- Prices and subscriptions ------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}_{time.monotonic_ns()}"


def monthly_price(client: stripe.StripeClient, amount: int = 4900, **params: Any) -> stripe.Price:
    return client.v1.prices.create(params={
        "unit_amount": amount, "currency": "usd", "recurring": {"interval": "month"},
        "product_data": {"name": "Tally Pro"}, **params})


def paying_customer(client: stripe.StripeClient, number: str = VISA) -> tuple[str, str]:
    """A customer whose default payment method (for invoices) is a card; (customer, card)."""
    customer = client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada"}).id
    pm = card(client, number)
    client.v1.payment_methods.attach(pm, params={"customer": customer})
    client.v1.customers.update(customer, params={
        "invoice_settings": {"default_payment_method": pm}})
    return customer, pm


def subscribe(client: stripe.StripeClient, price: str | None = None, **params: Any) -> Any:
    customer, _ = paying_customer(client)
    return client.v1.subscriptions.create(params={
        "customer": customer, "items": [{"price": price or monthly_price(client).id}],
        "metadata": {"tally_account_id": "acc_1"}, **params})


def period_end(sub: Any) -> int:
    """Where API version 2026-10-28.endive keeps a subscription's period: on its item."""
    return int(sub["items"].data[0].current_period_end)


def events_about(client: stripe.StripeClient, type: str, object_id: str) -> list[stripe.Event]:
    listed = client.v1.events.list(params={"type": type, "limit": 100}).data
    return [e for e in listed if e.data.object.id == object_id]


def test_price_create_retrieve_and_list_by_lookup_key(client: stripe.StripeClient) -> None:
    key = unique("pro_monthly")
    price = monthly_price(client, lookup_key=key, nickname="Pro", metadata={"plan": "pro"})

    assert isinstance(price, stripe.Price)
    assert price.id.startswith("price_") and price.object == "price"
    assert (price.type, price.unit_amount, price.currency, price.active) == (
        "recurring", 4900, "usd", True)
    assert price.recurring is not None
    assert (price.recurring.interval, price.recurring.interval_count) == ("month", 1)
    assert (price.lookup_key, price.nickname, price.metadata.to_dict()) == (
        key, "Pro", {"plan": "pro"})
    assert client.v1.products.retrieve(str(price.product)).name == "Tally Pro"
    assert client.v1.prices.retrieve(price.id).to_dict() == price.to_dict()
    assert client.v1.plans.retrieve(price.id).amount == 4900  # the Plan behind it

    found = client.v1.prices.list(params={"lookup_keys": [key], "limit": 1})
    assert [p.id for p in found.data] == [price.id]
    assert client.v1.prices.list(params={"lookup_keys": [unique("none")]}).data == []
    assert price.id not in [p.id for p in client.v1.prices.list(
        params={"active": False, "limit": 100}).data]

    with pytest.raises(stripe.InvalidRequestError, match="already uses that lookup key"):
        monthly_price(client, lookup_key=key)
    moved = client.v1.prices.create(params={
        "unit_amount": 5900, "currency": "usd", "recurring": {"interval": "year"},
        "product": price.product, "lookup_key": key, "transfer_lookup_key": True})
    assert [p.id for p in client.v1.prices.list(params={"lookup_keys": [key]}).data] == [moved.id]
    assert client.v1.prices.retrieve(price.id).lookup_key is None

    one_time = client.v1.prices.create(params={
        "unit_amount": 500, "currency": "usd", "product": price.product})
    assert (one_time.type, one_time.recurring) == ("one_time", None)
    with pytest.raises(stripe.InvalidRequestError, match="No such price") as missing:
        client.v1.prices.retrieve("price_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: colour"):
        monthly_price(client, colour="red")


def test_subscription_with_a_price_item(client: stripe.StripeClient) -> None:
    price = monthly_price(client)
    sub = subscribe(client, price.id, expand=["latest_invoice"])

    assert isinstance(sub, stripe.Subscription) and sub.status == "active"
    assert sub.metadata.to_dict() == {"tally_account_id": "acc_1"}
    item = sub["items"].data[0]
    assert isinstance(item.price, stripe.Price) and item.price.id == price.id
    assert item.price.unit_amount == 4900 and item.plan.id == price.id
    # Since API version 2025-03-31 the period is on the item only.
    assert item.current_period_start < item.current_period_end
    assert "current_period_start" not in sub and "plan" not in sub
    assert (sub.cancel_at_period_end, sub.cancel_at) == (False, None)
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid", 4900, "subscription_create")
    assert invoice.parent is not None and invoice.parent.type == "subscription_details"
    assert invoice.parent.subscription_details.subscription == sub.id
    assert "subscription" not in invoice and "payment_intent" not in invoice
    line = invoice.lines.data[0]
    assert invoice.number and line.pricing.price_details.price == price.id
    assert line.pricing.unit_amount_decimal == Decimal(4900) and "price" not in line
    assert line.parent.type == "subscription_item_details"
    assert line.parent.subscription_item_details.subscription == sub.id
    assert line.description == "1 \u00d7 Tally Pro (at $49.00 / month)"
    # What paid it is an invoice payment, not the invoice's (gone) payment_intent.
    payments = client.v1.invoice_payments.list(params={"invoice": invoice.id}).data
    assert [(p.status, p.is_default, p.amount_paid) for p in payments] == [("paid", True, 4900)]
    paid_by = client.v1.payment_intents.retrieve(str(payments[0].payment.payment_intent))
    assert paid_by.status == "succeeded" and "invoice" not in paid_by
    assert client.v1.invoice_payments.retrieve(payments[0].id).to_dict() == payments[0].to_dict()
    # Stripe sends invoice.paid with every invoice.payment_succeeded.
    assert events_about(client, "invoice.paid", invoice.id)
    assert events_about(client, "invoice.payment_succeeded", invoice.id)
    assert client.v1.subscriptions.retrieve(sub.id).to_dict()["items"]["data"][0]["price"][
        "id"] == price.id

    with pytest.raises(stripe.InvalidRequestError, match="No such price"):
        subscribe(client, "price_nope")
    one_time = client.v1.prices.create(params={
        "unit_amount": 500, "currency": "usd", "product": price.product})
    with pytest.raises(stripe.InvalidRequestError, match="type=one_time"):
        subscribe(client, one_time.id)


def test_cancel_at_period_end_and_back_emit_updated(client: stripe.StripeClient) -> None:
    sub = subscribe(client)

    cancelling = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert cancelling.cancel_at_period_end is True and cancelling.status == "active"
    assert cancelling.cancel_at == period_end(sub) and cancelling.canceled_at
    resumed = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert (resumed.cancel_at_period_end, resumed.cancel_at, resumed.canceled_at) == (
        False, None, None)

    updated = events_about(client, "customer.subscription.updated", sub.id)
    assert [(e.data.object.cancel_at_period_end, e.data.previous_attributes.cancel_at_period_end)
            for e in updated] == [(True, False), (False, True)]
    assert updated[0].data.object.cancel_at == period_end(sub)
    assert updated[0].data.object["items"].data[0].price.object == "price"
    assert not events_about(client, "customer.subscription.updated", subscribe(client).id)

    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.canceled_at and canceled.ended_at
    assert [e.data.object.status for e in events_about(
        client, "customer.subscription.deleted", sub.id)] == ["canceled"]
    with pytest.raises(stripe.InvalidRequestError, match="canceled subscription"):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})


def test_default_payment_method_must_be_attached(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create().id
    pm = card(client, VISA)
    with pytest.raises(stripe.InvalidRequestError, match="must be attached to the customer"):
        client.v1.customers.update(customer, params={
            "invoice_settings": {"default_payment_method": pm}})
    client.v1.payment_methods.attach(pm, params={"customer": customer})
    updated = client.v1.customers.update(customer, params={
        "invoice_settings": {"default_payment_method": pm}})
    assert updated.invoice_settings is not None
    assert updated.invoice_settings.default_payment_method == pm


def test_subscription_default_payment_method_pays_its_invoices(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create().id  # no default payment method of its own
    pm = card(client, VISA)
    client.v1.payment_methods.attach(pm, params={"customer": customer})
    sub = client.v1.subscriptions.create(params={
        "customer": customer, "items": [{"price": monthly_price(client).id}],
        "default_payment_method": pm, "payment_behavior": "allow_incomplete"})
    assert (sub.status, sub.default_payment_method) == ("active", pm)


def test_default_incomplete_waits_for_stripe_js(client: stripe.StripeClient, base_url: str) -> None:
    customer = client.v1.customers.create().id
    sub = client.v1.subscriptions.create(params={
        "customer": customer, "items": [{"price": monthly_price(client).id}],
        "payment_behavior": "default_incomplete",
        "payment_settings": {"save_default_payment_method": "on_subscription"},
        "expand": ["latest_invoice"]})
    assert sub.status == "incomplete" and sub.latest_invoice.status == "open"
    payment = client.v1.invoice_payments.list(params={"invoice": sub.latest_invoice.id}).data[0]
    assert (payment.status, payment.amount_paid, payment.amount_requested) == ("open", None, 4900)
    intent = client.v1.payment_intents.retrieve(str(payment.payment.payment_intent))
    assert intent.status == "requires_payment_method"

    status, body = post_json(
        f"{base_url}/js.stripe.com/tally/payment_intents/{intent.id}/confirm",
        {"key": "pk_test_x", "client_secret": intent.client_secret,
         "payment_method_data": card_data(VISA)})

    assert (status, body["status"]) == (200, "succeeded")
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active" and after.default_payment_method == body["payment_method"]
    assert [(e.data.object.status, e.data.previous_attributes.status) for e in events_about(
        client, "customer.subscription.updated", sub.id)] == [("active", "incomplete")]


def test_voiding_the_open_first_invoice_after_failed_3d_secure(
    client: stripe.StripeClient,
) -> None:
    customer, _ = paying_customer(client, THREE_D_SECURE)
    sub = client.v1.subscriptions.create(params={
        "customer": customer, "items": [{"price": monthly_price(client).id}]})
    assert sub.status == "incomplete"
    payment = client.v1.invoice_payments.list(params={"invoice": sub.latest_invoice}).data[0]
    intent = client.v1.payment_intents.retrieve(str(payment.payment.payment_intent))
    assert intent.status == "requires_action"
    client.raw_request("post", f"/v1/payment_intents/{intent.id}/_authenticate",
                       client_secret=intent.client_secret, success="false")
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (invoice.status, invoice.amount_remaining) == ("open", 4900)  # still owed
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"

    voided = client.v1.invoices.void_invoice(invoice.id)

    assert (voided.status, voided.amount_remaining) == ("void", 0)
    assert voided.status_transitions.voided_at
    assert client.v1.payment_intents.retrieve(intent.id).status == "canceled"
    assert [p.status for p in client.v1.invoice_payments.list(
        params={"invoice": invoice.id}).data] == ["canceled"]
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"
    assert events_about(client, "invoice.voided", invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="only void an open invoice"):
        client.v1.invoices.void_invoice(invoice.id)


def test_voiding_keeps_a_canceled_subscription_canceled(client: stripe.StripeClient) -> None:
    customer, _ = paying_customer(client, "4000000000000341")  # the first charge is declined
    sub = client.v1.subscriptions.create(params={
        "customer": customer, "items": [{"price": monthly_price(client).id}]})
    assert sub.status == "incomplete"
    client.v1.subscriptions.cancel(sub.id)
    assert client.v1.invoices.void_invoice(str(sub.latest_invoice)).status == "void"
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


# --- The renewal simulator ---------------------------------------------------------------


def test_renewal_failed_then_paid(client: stripe.StripeClient, base_url: str) -> None:
    sub = subscribe(client)

    failed = simulate_renewal(base_url, sub.id, "failed")

    assert failed["object"] == "invoice" and failed["id"].startswith("in_")
    assert (failed["status"], failed["amount_due"], failed["amount_paid"]) == ("open", 4900, 0)
    assert (failed["customer"], failed["currency"]) == (sub.customer, "usd")
    assert failed["parent"]["subscription_details"]["subscription"] == sub.id
    assert (failed["period_start"], failed["billing_reason"]) == (
        period_end(sub), "subscription_cycle")
    line = failed["lines"]["data"][0]
    assert line["amount"] == 4900
    assert line["pricing"]["price_details"]["price"] == sub["items"].data[0].price.id
    assert line["period"]["start"] == period_end(sub)
    assert line["description"] == "1 \u00d7 Tally Pro (at $49.00 / month)"
    past_due = client.v1.subscriptions.retrieve(sub.id)
    assert past_due.status == "past_due" and past_due.latest_invoice == failed["id"]
    assert past_due["items"].data[0].current_period_start == period_end(sub)
    assert events_about(client, "invoice.payment_failed", failed["id"])
    assert not events_about(client, "invoice.paid", failed["id"])
    assert events_about(client, "customer.subscription.updated", sub.id)[-1].data.object.status \
        == "past_due"
    assert client.v1.invoices.retrieve(failed["id"]).status == "open"

    paid = simulate_renewal(base_url, sub.id, "paid")

    assert (paid["status"], paid["amount_paid"]) == ("paid", 4900)
    assert paid["status_transitions"]["paid_at"] and paid["number"] != failed["number"]
    assert paid["period_start"] == period_end(past_due)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert events_about(client, "invoice.paid", paid["id"])
    assert events_about(client, "invoice.payment_succeeded", paid["id"])
    updated = events_about(client, "customer.subscription.updated", sub.id)[-1]
    assert (updated.data.object.status, updated.data.previous_attributes.status) == (
        "active", "past_due")


def test_renewal_of_a_subscription_set_to_cancel_ends_it(
    client: stripe.StripeClient, base_url: str
) -> None:
    sub = subscribe(client)
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})

    ended = simulate_renewal(base_url, sub.id, "paid")

    assert (ended["object"], ended["status"], ended["ended_at"]) == (
        "subscription", "canceled", period_end(sub))
    assert events_about(client, "customer.subscription.deleted", sub.id)
    with pytest.raises(urllib.error.HTTPError) as refused:
        simulate_renewal(base_url, sub.id, "paid")
    assert refused.value.code == 400


def test_renewal_simulator_needs_the_secret_key_and_an_outcome(
    client: stripe.StripeClient, base_url: str
) -> None:
    sub = subscribe(client)
    url = f"{base_url}/_ext/subscriptions/{sub.id}/renew"
    assert post_json(url, {"outcome": "paid"})[0] == 401
    with pytest.raises(urllib.error.HTTPError) as bad:
        simulate_renewal(base_url, sub.id, "maybe")
    assert bad.value.code == 400
    # The stripe library's raw_request works too (form-encoded).
    raw = client.raw_request("post", f"/_ext/subscriptions/{sub.id}/renew", outcome="paid")
    assert client.deserialize(raw, api_mode="V1").status == "paid"


# --- Checkout ----------------------------------------------------------------------------


def checkout_session(client: stripe.StripeClient, customer: str, price: str,
                     success_url: str = "https://example.com/ok", **params: Any) -> Any:
    return client.v1.checkout.sessions.create(params={
        "mode": "subscription", "customer": customer,
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://example.com/cancelled",
        "client_reference_id": "acc_1", "metadata": {"tally_account_id": "acc_1"},
        "subscription_data": {"metadata": {"tally_account_id": "acc_1", "tally_plan": "pro"}},
        **params})


def test_checkout_session_create_and_retrieve(client: stripe.StripeClient, base_url: str) -> None:
    customer = client.v1.customers.create(params={"email": "ada@example.com"}).id
    price = monthly_price(client)
    session = checkout_session(client, customer, price.id)

    assert isinstance(session, stripe.checkout.Session)
    assert session.id.startswith("cs_test_") and session.object == "checkout.session"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "subscription")
    assert (session.customer, session.subscription, session.client_reference_id) == (
        customer, None, "acc_1")
    assert session.metadata.to_dict() == {"tally_account_id": "acc_1"}
    assert session.url == f"{base_url}/js.stripe.com/tally/checkout/c/pay/{session.id}"
    assert session.success_url == "https://example.com/ok?session_id={CHECKOUT_SESSION_ID}"
    assert (session.amount_total, session.currency) == (4900, "usd")
    assert client.v1.checkout.sessions.retrieve(session.id).to_dict() == session.to_dict()
    with urllib.request.urlopen(session.url, timeout=5) as response:  # no key needed
        assert "Card number" in response.read().decode()

    with pytest.raises(stripe.InvalidRequestError, match="No such price"):
        checkout_session(client, customer, "price_nope")
    with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: colour"):
        checkout_session(client, customer, price.id, colour="red")
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)


@pytest.fixture
def landing() -> Iterator[str]:
    """A page for success_url and return_url to land on."""

    class Landing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<h1>Back at Tally</h1>")

        def log_message(self, *args: object) -> None:
            pass

    with serving(Landing) as url:
        yield url


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def pay(tab: Any, number: str) -> None:
    tab.get_by_label("Card number").fill(number)
    tab.get_by_label("Expiry (MM / YY)").fill("12 / 34")
    tab.get_by_label("CVC").fill("123")
    tab.get_by_role("button", name="Pay").click()


@pytest.mark.e2e
def test_checkout_page_pays_and_subscribes(
    tab: Any, client: stripe.StripeClient, landing: str
) -> None:
    customer = client.v1.customers.create(params={"email": "ada@example.com"}).id
    price = monthly_price(client)
    session = checkout_session(client, customer, price.id, success_url=landing + "/ok")
    tab.goto(session.url)
    assert tab.get_by_role("link", name="Cancel").get_attribute("href") == \
        "https://example.com/cancelled"

    pay(tab, DECLINED)
    assert tab.get_by_role("alert").inner_text() == "Your card was declined."
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    pay(tab, "4242 4242 4242 4242")
    tab.wait_for_url(f"{landing}/ok?session_id={session.id}")

    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert (done.status, done.payment_status, done.url) == ("complete", "paid", None)
    sub = done.subscription
    assert isinstance(sub, stripe.Subscription) and sub.status == "active"
    assert sub.customer == customer and sub["items"].data[0].price.id == price.id
    assert sub.metadata.to_dict() == {"tally_account_id": "acc_1", "tally_plan": "pro"}
    default = client.v1.customers.retrieve(customer).invoice_settings.default_payment_method
    assert default == sub.default_payment_method
    assert client.v1.payment_methods.retrieve(default).card.last4 == "4242"
    completed = events_about(client, "checkout.session.completed", session.id)
    assert [e.data.object.subscription for e in completed] == [sub.id]

    tab.goto(session.url)  # paid: the page no longer takes a card
    assert tab.get_by_test_id("closed").inner_text() == "This Checkout Session is already paid."


# --- Customer Portal ---------------------------------------------------------------------


def test_portal_configurations() -> None:
    with running_localstripe() as fresh_url:  # "first is the default" needs an empty store
        fresh = make_client(fresh_url)
        customer = fresh.v1.customers.create().id
        with pytest.raises(stripe.InvalidRequestError, match="default configuration has not"):
            fresh.v1.billing_portal.sessions.create(params={
                "customer": customer, "return_url": "https://example.com/back"})

        first = fresh.v1.billing_portal.configurations.create(params={
            "business_profile": {"headline": "Tally billing"},
            "features": {
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "invoice_history": {"enabled": True},
                "customer_update": {"enabled": True, "allowed_updates": ["email", "address"]},
            },
            "default_return_url": "https://example.com/account",
            "metadata": {"managed_by": "tally"},
        })
        second = fresh.v1.billing_portal.configurations.create(params={
            "features": {"payment_method_update": {"enabled": True}}})

        assert isinstance(first, stripe.billing_portal.Configuration)
        assert first.id.startswith("bpc_") and first.object == "billing_portal.configuration"
        assert (first.active, first.is_default, first.livemode) == (True, True, False)
        assert second.is_default is False
        assert first.created and first.updated >= first.created
        assert first.default_return_url == "https://example.com/account"
        assert first.metadata.to_dict() == {"managed_by": "tally"}
        assert first.business_profile.to_dict() == {
            "headline": "Tally billing", "privacy_policy_url": None, "terms_of_service_url": None}
        features = first.features.to_dict()
        assert features["subscription_cancel"] == {
            "cancellation_reason": {"enabled": False, "options": [
                "too_expensive", "missing_features", "switched_service", "unused", "other"]},
            "enabled": True, "mode": "at_period_end", "proration_behavior": "none"}
        assert features["customer_update"] == {
            "allowed_updates": ["email", "address"], "enabled": True}
        assert features["invoice_history"] == {"enabled": True}
        assert features["payment_method_update"] == {
            "enabled": False, "payment_method_configuration": None}
        assert features["subscription_pause"] == {"enabled": False}
        assert features["subscription_update"] == {
            "billing_cycle_anchor": None, "default_allowed_updates": [], "enabled": False,
            "products": [], "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []}, "trial_update_behavior": "end_trial"}

        page_one = fresh.v1.billing_portal.configurations.list(params={"limit": 1})
        assert ([c.id for c in page_one.data], page_one.has_more) == ([second.id], True)
        page_two = fresh.v1.billing_portal.configurations.list(
            params={"limit": 1, "starting_after": second.id})
        assert ([c.id for c in page_two.data], page_two.has_more) == ([first.id], False)
        assert fresh.v1.billing_portal.configurations.retrieve(first.id).to_dict() == first.to_dict()

        updated = fresh.v1.billing_portal.configurations.update(second.id, params={
            "active": False, "features": {"subscription_cancel": {"enabled": True}}})
        assert updated.active is False and updated.features.subscription_cancel.enabled is True
        assert updated.features.payment_method_update.enabled is True  # merged, not replaced
        assert [c.id for c in fresh.v1.billing_portal.configurations.list(
            params={"active": True}).data] == [first.id]
        with pytest.raises(stripe.InvalidRequestError, match="default configuration"):
            fresh.v1.billing_portal.configurations.update(first.id, params={"active": False})
        with pytest.raises(stripe.InvalidRequestError, match="unknown parameter: is_default"):
            fresh.v1.billing_portal.configurations.create(params={
                "features": {"invoice_history": {"enabled": True}}, "is_default": True})
        with pytest.raises(stripe.InvalidRequestError, match="Missing required param: features"):
            fresh.v1.billing_portal.configurations.create(params={})
        with pytest.raises(stripe.InvalidRequestError, match="mode"):
            fresh.v1.billing_portal.configurations.create(params={
                "features": {"subscription_cancel": {"enabled": True, "mode": "later"}}})
        with pytest.raises(stripe.InvalidRequestError, match="not active"):
            fresh.v1.billing_portal.sessions.create(params={
                "customer": customer, "configuration": second.id})

        portal = fresh.v1.billing_portal.sessions.create(params={"customer": customer})
        assert isinstance(portal, stripe.billing_portal.Session)
        assert portal.id.startswith("bps_") and portal.object == "billing_portal.session"
        assert (portal.customer, portal.configuration, portal.livemode) == (
            customer, first.id, False)
        assert portal.return_url == "https://example.com/account" and portal.created
        assert portal.url.startswith(fresh_url + "/js.stripe.com/tally/billing_portal/session/")
        with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
            fresh.v1.billing_portal.sessions.create(params={"customer": "cus_nope"})


def portal_configuration(client: stripe.StripeClient, mode: str) -> str:
    return client.v1.billing_portal.configurations.create(params={"features": {
        "subscription_cancel": {"enabled": True, "mode": mode},
        "invoice_history": {"enabled": True}, "payment_method_update": {"enabled": True}}}).id


@pytest.mark.e2e
def test_portal_page_cancels_at_period_end_and_renews(
    tab: Any, client: stripe.StripeClient, landing: str
) -> None:
    sub = subscribe(client)
    portal = client.v1.billing_portal.sessions.create(params={
        "customer": sub.customer, "return_url": landing + "/account",
        "configuration": portal_configuration(client, "at_period_end")})
    tab.goto(portal.url)
    shown = tab.get_by_test_id("subscription")
    assert "Tally Pro" in shown.inner_text() and "$49.00 / month" in shown.inner_text()
    assert tab.get_by_test_id("status").inner_text() == "Status: active"
    assert tab.get_by_test_id("payment-method").inner_text() == "Visa ending in 4242"
    assert "$49.00" in tab.get_by_test_id("invoices").inner_text()

    tab.get_by_role("button", name="Cancel plan").click()
    assert tab.get_by_test_id("period").inner_text().startswith("Your plan will be canceled on")
    after = client.v1.subscriptions.retrieve(sub.id)
    assert (after.status, after.cancel_at_period_end, after.cancel_at) == (
        "active", True, period_end(sub))

    tab.get_by_role("button", name="Renew plan").click()
    assert tab.get_by_test_id("period").inner_text().startswith("Renews on")
    assert client.v1.subscriptions.retrieve(sub.id).cancel_at_period_end is False
    assert [e.data.object.cancel_at_period_end for e in events_about(
        client, "customer.subscription.updated", sub.id)] == [True, False]

    tab.get_by_role("link", name="Return").click()
    tab.wait_for_url(landing + "/account")


@pytest.mark.e2e
def test_portal_page_cancels_immediately(tab: Any, client: stripe.StripeClient) -> None:
    sub = subscribe(client)
    portal = client.v1.billing_portal.sessions.create(params={
        "customer": sub.customer, "return_url": "https://example.com/back",
        "configuration": portal_configuration(client, "immediately")})
    tab.goto(portal.url)

    tab.get_by_role("button", name="Cancel plan").click()

    assert tab.get_by_test_id("no-subscription").is_visible()
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert [e.data.object.status for e in events_about(
        client, "customer.subscription.deleted", sub.id)] == ["canceled"]
