"""Tally against Stripe's own definitions of the API version it speaks.

The official `stripe` library is generated from Stripe's API specification for one API
version and ships a typed class per object (`stripe.Invoice`, `stripe.InvoiceLineItem`,
`stripe.Subscription`, ...) whose annotations declare every field of that version. This
module proves:

1. Tally asks Stripe for the version the installed library was generated for, and
   pyproject.toml pins that library.
2. Every field path Tally reads (`services.billing.stripe_objects.FIELDS_READ`) is declared by
   the library's class for that object. A field Stripe removes from its API is removed from
   the library's model, and this test then fails, not production. (The paths Tally read
   before API version 2025-03-31, such as `invoice.subscription`, fail it.)
3. Every object the simulator returns to Tally, through every flow Tally runs against Stripe,
   has the fields Tally reads where Stripe would have them (a null only where the library
   declares the field optional), and no field the version does not declare.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
import types
import typing
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ForwardRef, Union

import pytest
import stripe
from stripe._stripe_object import UntypedStripeObject

from services.billing.stripe_objects import API_VERSION, FIELDS_READ
from tests.conftest import WEBHOOK_SECRET
from tests.support.localstripe import running_localstripe, simulate_renewal
from tests.support.payments import pay
from tests.support.stripe_events import deliver

# The library's class for each Stripe object type Tally reads, or the simulator answers
# Tally with (`object` as Stripe names it).
CLASSES: dict[str, type] = {
    "event": stripe.Event,
    "customer": stripe.Customer,
    "price": stripe.Price,
    "payment_method": stripe.PaymentMethod,
    "payment_intent": stripe.PaymentIntent,
    "setup_intent": stripe.SetupIntent,
    "subscription": stripe.Subscription,
    "subscription_item": stripe.SubscriptionItem,
    "invoice": stripe.Invoice,
    "line_item": stripe.InvoiceLineItem,
    "invoice_payment": stripe.InvoicePayment,
    "checkout.session": stripe.checkout.Session,
    "billing_portal.session": stripe.billing_portal.Session,
    "billing_portal.configuration": stripe.billing_portal.Configuration,
}


# --- Reading the library's declarations --------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """What the library declares for one field: its class when it is an object (None for
    a plain value), whether it may be null, and whether it is a list of that class."""

    cls: type | None
    optional: bool
    many: bool = False
    untyped: bool = False  # metadata and the like: any keys


def _resolve(ref: Any, owner: type) -> Any:
    """A forward reference ('Subscription') as the library's class."""
    if not isinstance(ref, (ForwardRef, str)):
        return ref
    name = ref.__forward_arg__ if isinstance(ref, ForwardRef) else ref
    package = owner.__module__.rsplit(".", 1)[0]
    for namespace in (sys.modules[owner.__module__], sys.modules.get(package), stripe):
        found = getattr(namespace, name, None)
        if isinstance(found, type):
            return found
    raise LookupError(f"cannot resolve {name!r} declared in {owner.__qualname__}")


def declared(owner: type, field: str) -> Declared:
    """The declaration of `field` in `owner` (a library class); LookupError if none."""
    hints = {k: v for cls in reversed(owner.__mro__) for k, v in vars(cls).get(
        "__annotations__", {}).items()}
    if field not in hints or field == "OBJECT_NAME":
        raise LookupError(f"{owner.__qualname__} declares no field {field!r}")
    hint, optional, many = hints[field], False, False
    while True:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (Union, types.UnionType):
            optional = optional or type(None) in args
            # An expandable field is the id (str) or the object: the object's class decides.
            objects = [a for a in args if a not in (type(None), str)]
            hint = objects[0] if len(objects) == 1 else str
        elif origin in (list, stripe.ListObject) or hint is stripe.ListObject:
            many, hint = True, args[0] if args else Any
        else:
            break
    hint = _resolve(hint, owner)
    untyped = typing.get_origin(hint) is UntypedStripeObject or hint in (dict, Any) or \
        typing.get_origin(hint) is dict
    cls = hint if isinstance(hint, type) and issubclass(hint, stripe.StripeObject) \
        and hint is not UntypedStripeObject else None
    return Declared(cls, optional, many, untyped)


def declared_path(cls: type, path: str) -> list[Declared]:
    """The declarations along `path` ("parent.subscription_details.subscription"); a list
    is stepped into with `data`. LookupError when the library does not declare a part."""
    steps: list[Declared] = []
    owner: type | None = cls
    for part in path.split("."):
        if steps and steps[-1].untyped:
            break  # inside metadata or an event's object: any key
        if steps and steps[-1].many and part == "data":
            steps.append(Declared(steps[-1].cls, False))
            owner = steps[-1].cls
            continue
        if owner is None:
            raise LookupError(f"{cls.__qualname__}.{path}: {part!r} is inside a plain value")
        step = declared(owner, part)
        steps.append(step)
        owner = step.cls
    return steps


def test_tally_asks_for_the_version_the_pinned_library_was_generated_for() -> None:
    assert API_VERSION == stripe.api_version == "2026-10-28.endive"
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"stripe\b", d)]
    assert pins == [f"stripe=={stripe.VERSION}"]


@pytest.mark.parametrize("object_type", sorted(FIELDS_READ))
def test_every_field_tally_reads_is_declared_by_the_library(object_type: str) -> None:
    cls = CLASSES[object_type]
    assert object_type == cls.OBJECT_NAME
    missing = []
    for path in sorted(FIELDS_READ[object_type]):
        try:
            declared_path(cls, path)
        except LookupError as exc:
            missing.append(str(exc))
    assert missing == [], f"Tally reads fields API version {API_VERSION} does not have"


@pytest.mark.parametrize(("cls", "path"), [
    (stripe.Invoice, "subscription"),  # moved to parent.subscription_details in 2025-03-31
    (stripe.Invoice, "payment_intent"),  # an invoice payment's payment.payment_intent now
    (stripe.Subscription, "current_period_end"),  # on the subscription's items now
    (stripe.PaymentIntent, "invoice"),
    (stripe.InvoiceLineItem, "price.id"),  # pricing.price_details.price now
    (stripe.InvoiceLineItem, "parent.subscription_item_details.plan"),
])
def test_a_field_the_library_does_not_declare_fails_the_check(cls: type, path: str) -> None:
    """What Tally read before API version 2025-03-31: each would fail the test above."""
    with pytest.raises(LookupError, match="declares no field"):
        declared_path(cls, path)


# --- The simulator's answers --------------------------------------------------------------


def shape_faults(data: Any, cls: type, where: str) -> Iterator[str]:
    """Every field of `data` the library's `cls` does not declare, and every non-null
    object checked the same way, recursively."""
    if not isinstance(data, dict):
        yield f"{where}: {type(data).__name__} where {cls.__qualname__} belongs"
        return
    for key, value in data.items():
        try:
            field = declared(cls, key)
        except LookupError:
            yield f"{where}.{key}: not a field of {cls.__qualname__} in {API_VERSION}"
            continue
        if value is None:
            if not field.optional:
                yield f"{where}.{key}: null, but {cls.__qualname__} declares it always set"
            continue
        if field.cls is None:
            continue
        if field.many:
            items = value.get("data", []) if isinstance(value, dict) else value
            if isinstance(value, dict):
                extra = set(value) - {"object", "data", "has_more", "url"}
                if extra:
                    yield f"{where}.{key}: list fields {sorted(extra)} Stripe's lists lack"
            for i, item in enumerate(items):
                if not isinstance(item, str):
                    yield from shape_faults(item, field.cls, f"{where}.{key}[{i}]")
        elif not isinstance(value, str):  # an id, or the expanded object
            yield from shape_faults(value, field.cls, f"{where}.{key}")


def read_faults(data: dict[str, Any], object_type: str, where: str) -> Iterator[str]:
    """Every path Tally reads that `data` lacks where Stripe would have it: each part must
    be there, and may be null only where the library declares it optional."""
    for path in sorted(FIELDS_READ[object_type]):
        try:
            steps = declared_path(CLASSES[object_type], path)
        except LookupError as exc:
            yield f"{where}: {exc}"
            continue
        value: Any = data
        for part, step in zip(path.split("."), steps, strict=False):
            if isinstance(value, list) and part == "data":
                break  # a list: its items are objects of their own, checked as such
            if not isinstance(value, dict) or part not in value:
                yield f"{where}: no {path} (missing {part!r})"
                break
            value = value[part]
            if value is None:
                if not step.optional:
                    yield f"{where}: {path} is null, but Stripe always sets {part!r}"
                break
            if step.untyped:
                break


@dataclass
class Simulator:
    url: str
    client: stripe.StripeClient

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        """The raw JSON the simulator answers, as Tally's requests get it."""
        request = urllib.request.Request(
            f"{self.url}{path}?{urllib.parse.urlencode(query)}",
            headers={"Authorization": "Bearer sk_test_tally", "Stripe-Version": API_VERSION})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Stripe-Version"] == API_VERSION
            return dict(json.load(response))


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    """A simulator of this module's own: every object in it comes from the flows below."""
    with running_localstripe() as url:
        yield url


@pytest.fixture(scope="module")
def stripe_client(localstripe_url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_tally", base_addresses={"api": localstripe_url})


def _card(stripe_client: stripe.StripeClient, number: str) -> str:
    return stripe_client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034,
                                 "cvc": "123"}}).id


def _deliver(client: Any, simulator: Simulator, event_type: str, object_id: str) -> None:
    events = simulator.get("/v1/events", type=event_type, limit=1000)["data"]
    payload = json.dumps(next(e for e in events if e["data"]["object"]["id"] == object_id))
    answer = deliver(client, payload.encode(), WEBHOOK_SECRET)
    assert answer["status"] == "processed", answer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def _run_every_flow(client: Any, make_customer: Any, stripe_client: stripe.StripeClient,
                    simulator: Simulator) -> None:
    """Everything Tally asks of Stripe, once each."""
    payer = make_customer("Payer")
    started = client.post("/v1/billing/payment-intents", headers=payer.headers,
                          json={"amount": 2500}).get_json()
    assert pay(stripe_client, started["payment_intent_id"]) == "succeeded"
    confirmed = client.post("/v1/billing/confirm-payment", headers=payer.headers,
                            json={"payment_intent_id": started["payment_intent_id"]})
    assert confirmed.get_json()["credited"] is True

    # An upgrade whose 3-D Secure step fails (Tally ends it and voids its invoice).
    secure = make_customer("Secure")
    required = client.post("/v1/billing/setup", headers=secure.headers,
                           json={"payment_method_id": _card(stripe_client, "4000002500003155")})
    assert required.status_code == 402, required.get_json()
    stripe_client.raw_request(
        "post", f"/v1/payment_intents/{required.get_json()['payment_intent_id']}/_authenticate",
        client_secret=required.get_json()["payment_intent_client_secret"], success="false")
    assert client.post("/v1/billing/setup/confirm", headers=secure.headers, json={
        "subscription_id": required.get_json()["subscription_id"]}).status_code == 402

    # Subscribe (with Stripe's test id), renew, fail a renewal, recover, cancel and end.
    pro = make_customer("Pro")
    assert client.post("/v1/billing/setup", headers=pro.headers,
                       json={"payment_method_id": "pm_card_visa"}).status_code == 200
    sub_id = client.get("/v1/billing/subscription", headers=pro.headers).get_json()["id"]
    _deliver(client, simulator, "customer.subscription.created", sub_id)
    paid = simulate_renewal(simulator.url, sub_id, "paid")
    _deliver(client, simulator, "invoice.paid", paid["id"])
    failed = simulate_renewal(simulator.url, sub_id, "failed")
    _deliver(client, simulator, "invoice.payment_failed", failed["id"])
    stripe_client.v1.invoices.pay(failed["id"])
    _deliver(client, simulator, "invoice.paid", failed["id"])
    assert client.post("/v1/billing/cancel", headers=pro.headers).status_code == 200
    simulate_renewal(simulator.url, sub_id, "paid")
    _deliver(client, simulator, "customer.subscription.deleted", sub_id)
    assert client.get("/v1/me", headers=pro.headers).get_json()["tier"] == "free"

    # Stripe Checkout, paid on its page; the Customer Portal.
    shopper = make_customer("Shopper")
    plans = client.get("/v1/billing/plans", headers=shopper.headers).get_json()["data"]
    price = next(p for p in plans if p["name"] == "pro")["price"]["priceId"]
    url = client.post("/v1/billing/checkout", headers=shopper.headers, json={
        "priceId": price, "successUrl": "https://example.com/ok",
        "cancelUrl": "https://example.com/no"}).get_json()["url"]
    form = urllib.parse.urlencode({"number": "4242424242424242", "expiry": "12 / 34",
                                   "cvc": "123", "name": "Ada"}).encode()
    with pytest.raises(urllib.error.HTTPError) as paid_page:  # its 303, not followed
        urllib.request.build_opener(_NoRedirect).open(urllib.request.Request(url, data=form))
    assert paid_page.value.code == 303
    session_id = url.rsplit("/", 1)[1]
    _deliver(client, simulator, "checkout.session.completed", session_id)
    assert client.get("/v1/me", headers=shopper.headers).get_json()["tier"] == "pro"
    portal = client.post("/v1/billing/portal", headers=shopper.headers,
                         json={"returnUrl": "https://example.com/back"})
    assert portal.status_code == 200


def _collect(simulator: Simulator) -> list[tuple[str, dict[str, Any], str]]:
    """(object type, the object, where it came from): every event the simulator sent,
    its object, and every object Tally reads as the API answers it now."""
    found: list[tuple[str, dict[str, Any], str]] = []

    def add(data: dict[str, Any], where: str) -> None:
        found.append((data["object"], data, where))
        if data["object"] == "invoice":
            for line in data["lines"]["data"]:
                add(line, f"{where} line {line['id']}")
        if data["object"] == "subscription":
            for item in data["items"]["data"]:
                add(item, f"{where} item {item['id']}")

    for event in simulator.get("/v1/events", limit=100000)["data"]:
        add(event, f"event {event['id']} ({event['type']})")
        obj = event["data"]["object"]
        if obj.get("object") in CLASSES:
            add(obj, f"{event['type']} event's object")
    for customer in simulator.get("/v1/customers", limit=100)["data"]:
        add(customer, customer["id"])
        for pm in simulator.get("/v1/payment_methods", customer=customer["id"],
                                type="card")["data"]:
            add(pm, pm["id"])
        for invoice in simulator.get("/v1/invoices", customer=customer["id"], limit=100)["data"]:
            add(invoice, invoice["id"])
            for payment in simulator.get("/v1/invoice_payments", invoice=invoice["id"])["data"]:
                add(payment, payment["id"])
    for path in ("/v1/subscriptions", "/v1/payment_intents", "/v1/checkout/sessions",
                 "/v1/billing_portal/configurations", "/v1/prices"):
        query = {"status": "all"} if path == "/v1/subscriptions" else {}
        for obj in simulator.get(path, limit=100, **query)["data"]:
            add(obj, obj["id"])
    return found


def test_the_simulator_answers_tally_as_stripe_defines_it(
        client, make_customer, stripe_client, localstripe_url) -> None:
    simulator = Simulator(localstripe_url, stripe_client)
    _run_every_flow(client, make_customer, stripe_client, simulator)
    customer = stripe_client.v1.customers.create().id
    setup = stripe_client.v1.setup_intents.create(params={"customer": customer})
    found = [*_collect(simulator),
             ("setup_intent", simulator.get(f"/v1/setup_intents/{setup.id}"), setup.id)]

    seen = {object_type for object_type, _, _ in found}
    assert set(FIELDS_READ) <= seen, f"no {sorted(set(FIELDS_READ) - seen)} to check"
    faults = []
    for object_type, data, where in found:
        if object_type in CLASSES:
            faults += shape_faults(data, CLASSES[object_type], where)
        if object_type in FIELDS_READ:
            faults += read_faults(data, object_type, where)
    assert faults == [], "\n".join(sorted(set(faults))[:400])


def test_the_shape_check_finds_a_field_of_an_older_version() -> None:
    """2020's invoice: `subscription` at the top, no `parent`; each is reported."""
    old = {"id": "in_1", "object": "invoice", "subscription": "sub_1", "amount_paid": 4900,
           "lines": {"object": "list", "data": [], "has_more": False, "url": "/v1/invoices"}}
    assert list(shape_faults(old, stripe.Invoice, "in_1")) == [
        "in_1.subscription: not a field of Invoice in 2026-10-28.endive"]
    assert "in_1: no parent.subscription_details.subscription (missing 'parent')" in list(
        read_faults(old, "invoice", "in_1"))
