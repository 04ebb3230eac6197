"""The test/demo extension of localstripe (devtools/localstripe_ext), through real clients:
the ``stripe`` library for the API and Chromium for the extended Stripe.js."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from tests.support.localstripe import STRIPE_JS_PATH, register_webhook, running_localstripe

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VISA = "4242424242424242"
DECLINED = "4000000000000002"
THREE_D_SECURE = "4000002500003155"


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
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
