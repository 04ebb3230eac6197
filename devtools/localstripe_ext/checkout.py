"""Checkout Sessions and their hosted payment page.

API (secret key, like every ``/v1/`` route):

* ``POST /v1/checkout/sessions``: ``mode`` (``subscription`` | ``payment``), ``customer``
  or ``customer_email``, ``line_items[][price|quantity]``, ``success_url``, ``cancel_url``,
  ``client_reference_id``, ``metadata``, ``subscription_data[metadata|description]``,
  ``payment_intent_data[metadata|description]``, ``payment_method_types``, ``expires_at``,
  ``ui_mode=hosted``. Anything else answers 400 ``parameter_unknown``.
* ``GET /v1/checkout/sessions/{id}`` (``expand[]=subscription`` etc.), ``GET
  /v1/checkout/sessions`` (``customer``, ``subscription``, ``payment_intent``, ``status``),
  ``POST /v1/checkout/sessions/{id}/expire``.

Hosted page (no key: under ``/js.stripe.com/``, which localstripe's auth check exempts;
the unguessable session id in the URL is the credential, as on Stripe's own
``checkout.stripe.com/c/pay/cs_test_...``): ``GET /js.stripe.com/tally/checkout/c/pay/{id}``
shows the items, card number / expiry / CVC fields, a "Pay" button and a "Cancel" link to
``cancel_url``. The form posts back to the same URL. A payable card (4242 4242 4242 4242)
creates a PaymentMethod; in subscription mode it is attached to the customer, made the
customer's default, and the subscription is created with it (``subscription_data``
metadata copied); in payment mode a PaymentIntent is created and confirmed. The session
becomes ``complete``/``paid``, ``checkout.session.completed`` is emitted, and the browser is
redirected (303) to ``success_url`` with ``{CHECKOUT_SESSION_ID}`` replaced. Declined cards
(4000 0000 0000 0002, 4000 0000 0000 0341) show "Your card was declined." on the page; cards
that need 3-D Secure are refused with a message (the page has no 3-D Secure step).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    List,
    PaymentIntent,
    PaymentMethod,
    StripeObject,
    Subscription,
    random_id,
    store,
)

from .billing import Price
from .common import (
    DeepExport,
    as_dict,
    as_int,
    as_list,
    emit,
    enum,
    error_box,
    esc,
    fail,
    message_page,
    missing,
    money,
    newest_first,
    no_such,
    now,
    opt_str,
    page,
    page_of,
    price_text,
    product_name,
    public_url,
    retrieve,
    unknown,
    unsupported,
    user_error_message,
    where,
)
from .common import metadata as parse_metadata

PAGE_PATH = "/js.stripe.com/tally/checkout/c/pay/"
DECLINED = "Your card was declined."


class CheckoutSession(DeepExport, StripeObject):
    object = "checkout.session"
    _id_prefix = "cs_test_"

    def __init__(
        self,
        mode: Any = None,
        customer: Any = None,
        customer_email: Any = None,
        line_items: Any = None,
        success_url: Any = None,
        cancel_url: Any = None,
        client_reference_id: Any = None,
        metadata: Any = None,
        subscription_data: Any = None,
        payment_intent_data: Any = None,
        payment_method_types: Any = None,
        expires_at: Any = None,
        ui_mode: Any = None,
        **extra: Any,
    ) -> None:
        unknown(extra)
        if mode is None:
            missing("mode")
        mode = enum(mode, "mode", ("payment", "setup", "subscription"))
        if mode == "setup":
            unsupported("mode=setup", "mode")
        if ui_mode not in (None, "hosted"):
            unsupported(f"ui_mode={ui_mode}", "ui_mode")
        if customer is not None and customer_email is not None:
            fail("You may only specify one of these parameters: customer, customer_email.",
                 "customer", "parameters_exclusive")
        if customer is not None:
            retrieve(Customer, customer, "customer", "customer")
        customer_email = opt_str(customer_email, "customer_email")
        items = _line_items(line_items, mode)
        success_url = _url(success_url, "success_url")
        cancel_url = _url(cancel_url, "cancel_url")
        client_reference_id = opt_str(client_reference_id, "client_reference_id")
        if client_reference_id is not None and len(client_reference_id) > 200:
            fail("Invalid client_reference_id: must be at most 200 characters",
                 "client_reference_id")
        meta = parse_metadata(metadata)
        sub_data = _mode_data(subscription_data, "subscription_data", mode, "subscription")
        pi_data = _mode_data(payment_intent_data, "payment_intent_data", mode, "payment")
        if payment_method_types is not None:
            for i, kind in enumerate(as_list(payment_method_types, "payment_method_types")):
                if kind != "card":
                    unsupported(f"payment method type {kind}", f"payment_method_types[{i}]")
        if expires_at is not None:
            expires_at = as_int(expires_at, "expires_at", minimum=now() + 30 * 60)

        super().__init__(self._id_prefix + random_id(58))
        total = sum(_price(p).unit_amount * q for p, q in items)
        self.amount_subtotal = total
        self.amount_total = total
        self.cancel_url = cancel_url
        self.client_reference_id = client_reference_id
        self.currency = _price(items[0][0]).currency
        self.customer = customer
        self.customer_details = None
        self.customer_email = customer_email
        self.expires_at = expires_at or self.created + 24 * 3600
        self.invoice = None
        self.metadata = meta
        self.mode = mode
        self.payment_intent = None
        self.payment_method_types = ["card"]
        self.payment_status = "unpaid"
        self.setup_intent = None
        self.status = "open"
        self.subscription = None
        self.success_url = success_url
        self.ui_mode = "hosted"
        self.url = public_url(PAGE_PATH + self.id)
        self._line_items = items
        self._subscription_data = sub_data
        self._payment_intent_data = pi_data


def _mode_data(value: Any, param: str, mode: str, only_in: str) -> dict[str, Any]:
    """``subscription_data`` or ``payment_intent_data``: the ``metadata`` and ``description``
    given to the object the session creates, allowed in one mode only."""
    data = dict(as_dict(value or {}, param))
    result = {"metadata": parse_metadata(data.pop("metadata", None), f"{param}[metadata]"),
              "description": opt_str(data.pop("description", None), f"{param}[description]")}
    unknown(data, param)
    if value is not None and mode != only_in:
        fail(f"You can only specify `{param}` in `{only_in}` mode.", param)
    return result


def _url(value: Any, param: str) -> str | None:
    url = opt_str(value, param)
    if url is not None and not re.match(r"^https?://", url):
        fail(f"Not a valid URL: {param}", param, "url_invalid")
    return url


def _price(price_id: str) -> Price:
    return store["price:" + price_id]


def _line_items(value: Any, mode: str) -> list[tuple[str, int]]:
    if value is None:
        missing("line_items")
    items: list[tuple[str, int]] = []
    for i, item in enumerate(as_list(value, "line_items")):
        item = dict(as_dict(item, f"line_items[{i}]"))
        if "price_data" in item:
            unsupported("price_data (create a Price first)", f"line_items[{i}][price_data]")
        price_id = item.pop("price", None)
        if price_id is None:
            missing(f"line_items[{i}][price]")
        price = store.get("price:" + str(price_id))
        if price is None:
            no_such("price", price_id, f"line_items[{i}][price]")
        if not price.active:
            fail(f"The price `{price.id}` is not active.", f"line_items[{i}][price]")
        if "quantity" not in item:
            fail(f"Quantity is required. Add `quantity` to `line_items[{i}]`",
                 f"line_items[{i}][quantity]", "parameter_missing")
        quantity = as_int(item.pop("quantity"), f"line_items[{i}][quantity]", minimum=1)
        unknown(item, f"line_items[{i}]")
        items.append((price.id, quantity))
    if not items:
        missing("line_items")
    if len({_price(p).currency for p, _ in items}) > 1:
        fail("All prices must use the same currency.", "line_items")
    recurring = [p for p, _ in items if _price(p).type == "recurring"]
    if mode == "subscription":
        if not recurring:
            fail("You must provide at least one recurring price in `subscription` mode when "
                 "using prices.", "line_items")
        if len(items) > 1:
            unsupported("more than one line item in subscription mode", "line_items")
    elif recurring:
        fail("You specified `payment` mode but passed a recurring price. Either switch to "
             "`subscription` mode or use only one-time prices.", "line_items")
    return items


def create_session(**params: Any) -> CheckoutSession:
    return CheckoutSession(**params)


def retrieve_session(id: str, **extra: Any) -> CheckoutSession:
    unknown(extra)
    session = _session_or_none(id)
    if session is None:
        no_such("checkout.session", id)
    return session


def list_sessions(
    customer: Any = None,
    subscription: Any = None,
    payment_intent: Any = None,
    status: Any = None,
    limit: Any = None,
    starting_after: Any = None,
    **extra: Any,
) -> List:
    unknown(extra)
    sessions = newest_first(CheckoutSession)
    for field, value in (("customer", customer), ("subscription", subscription),
                         ("payment_intent", payment_intent), ("status", status)):
        sessions = where(sessions, field, value)
    return page_of("/v1/checkout/sessions", sessions, limit, starting_after)


def expire_session(id: str, **extra: Any) -> CheckoutSession:
    unknown(extra)
    session: CheckoutSession = retrieve(CheckoutSession, id, "checkout.session")
    if session.status != "open":
        fail(f"Only Checkout Sessions with a status in [\"open\"] can be expired. This one is "
             f"{session.status}.")
    _expire(session)
    return session


def _expire(session: CheckoutSession) -> None:
    session.status = "expired"
    session.url = None
    emit("checkout.session.expired", session)


ROUTES = [
    ("POST", "/v1/checkout/sessions", create_session),
    ("GET", "/v1/checkout/sessions", list_sessions),
    ("GET", "/v1/checkout/sessions/{id}", retrieve_session),
    ("POST", "/v1/checkout/sessions/{id}/expire", expire_session),
]


# --- The hosted page ----------------------------------------------------------------------


class PaymentRefused(Exception):
    """Shown on the page; the session stays open so the customer can try again."""


def _session_or_none(id: str) -> CheckoutSession | None:
    session = store.get("checkout.session:" + id)
    if session is not None and session.status == "open" and session.expires_at <= now():
        _expire(session)
    return session


def _render(session: CheckoutSession, error: str | None = None, form: dict[str, str] | None = None,
            status: int = 200) -> web.Response:
    form = form or {}
    rows = []
    for price_id, quantity in session._line_items:
        price = _price(price_id)
        amount = price_text(price.unit_amount * quantity, price.currency, price.recurring)
        qty = f"{quantity} \u00d7 " if quantity > 1 else ""
        rows.append(f"<tr><td>{qty}{esc(product_name(price.product))}</td><td>{esc(amount)}</td></tr>")
    email = session.customer_email
    if session.customer:
        email = Customer._api_retrieve(session.customer).email or email
    email_field = ""
    if email:
        email_line = f'<p class="muted">Paying as <span data-testid="email">{esc(email)}</span></p>'
    else:
        email_line = ""
        email_field = ('<label for="email">Email</label><input id="email" name="email" '
                       f'type="email" required autocomplete="email" value="{esc(form.get("email", ""))}">')
    cancel = (f'<p><a href="{esc(session.cancel_url)}" data-testid="cancel">Cancel</a></p>'
              if session.cancel_url else "")
    verb = "Subscribe" if session.mode == "subscription" else "Pay"
    body = f"""
<h1>{verb} to {esc(_merchant())}</h1>
<table data-testid="line-items">{"".join(rows)}
<tr><th>Total due today</th><th data-testid="total">{esc(money(session.amount_total,
                                                             session.currency))}</th></tr></table>
{email_line}
{error_box(error)}
<form method="post" action="{esc(PAGE_PATH + session.id)}" novalidate>
{email_field}
<label for="number">Card number</label>
<input id="number" name="number" inputmode="numeric" autocomplete="cc-number"
 placeholder="1234 1234 1234 1234" value="{esc(form.get("number", ""))}">
<div class="row"><div><label for="expiry">Expiry (MM / YY)</label>
<input id="expiry" name="expiry" autocomplete="cc-exp" placeholder="MM / YY"
 value="{esc(form.get("expiry", ""))}"></div>
<div><label for="cvc">CVC</label><input id="cvc" name="cvc" inputmode="numeric"
 autocomplete="cc-csc" placeholder="CVC" value="{esc(form.get("cvc", ""))}"></div></div>
<label for="name">Name on card</label>
<input id="name" name="name" autocomplete="cc-name" value="{esc(form.get("name", ""))}">
<button type="submit">Pay</button>
</form>
{cancel}
<p class="muted">localstripe test page. Try 4242 4242 4242 4242 (paid) or
4000 0000 0000 0002 (declined).</p>
"""
    return page(f"{verb} - {_merchant()}", body, status)


def _merchant() -> str:
    return "Tally"


def _open_session(request: web.Request) -> CheckoutSession | web.Response:
    """The open session the page is for, or the page that says why there is none."""
    session = _session_or_none(request.match_info["id"])
    if session is None:
        return message_page("Checkout", "No such Checkout Session.", 404)
    if session.status != "open":
        text = {"complete": "This Checkout Session is already paid.",
                "expired": "This Checkout Session has expired."}.get(session.status, "")
        return message_page("Checkout", text, 410, testid="closed")
    return session


async def show_page(request: web.Request) -> web.Response:
    session = _open_session(request)
    if isinstance(session, web.Response):
        return session
    return _render(session)


async def submit_page(request: web.Request) -> web.StreamResponse:
    session = _open_session(request)
    if isinstance(session, web.Response):
        return session
    posted = await request.post()
    form = {key: str(posted.get(key, "")).strip() for key in ("number", "expiry", "cvc", "name",
                                                               "email")}
    try:
        complete(session, form)
    except PaymentRefused as refused:
        return _render(session, str(refused), form, status=402)
    except UserError as error:
        return _render(session, user_error_message(error), form, status=error.code)
    if session.success_url is None:
        return message_page("Checkout", "Payment complete.", heading="Thanks!", testid="complete")
    location = session.success_url.replace("{CHECKOUT_SESSION_ID}", session.id)
    raise web.HTTPSeeOther(location)


def _card(form: dict[str, str]) -> dict[str, Any]:
    number = re.sub(r"[\s-]", "", form["number"])
    if not re.fullmatch(r"\d{16}", number):
        raise PaymentRefused("Your card number is incomplete.")
    expiry = re.fullmatch(r"\s*(\d{1,2})\s*/?\s*(\d{2}|\d{4})\s*", form["expiry"])
    if expiry is None or not 1 <= int(expiry.group(1)) <= 12:
        raise PaymentRefused("Your card's expiration date is incomplete.")
    month, year = int(expiry.group(1)), int(expiry.group(2))
    year = year + 2000 if year < 100 else year
    today = datetime.now(UTC)
    if (year, month) < (today.year, today.month):
        raise PaymentRefused("Your card's expiration year is in the past.")
    if not re.fullmatch(r"\d{3}", form["cvc"]):
        raise PaymentRefused("Your card's security code is incomplete.")
    return {"number": number, "exp_month": month, "exp_year": year, "cvc": form["cvc"]}


def complete(session: CheckoutSession, form: dict[str, str]) -> None:
    """What Stripe does when the customer pays on the Checkout page."""
    card = _card(form)
    email = session.customer_email or form.get("email") or None
    if session.customer is None and not email:
        raise PaymentRefused("Your email is incomplete.")
    billing = {"email": email, "name": form.get("name") or None}
    pm = PaymentMethod(type="card", card=card, billing_details=billing)
    if pm._requires_authentication():
        raise PaymentRefused("This test page cannot run 3-D Secure; use 4242 4242 4242 4242.")
    if pm._charging_is_declined():  # Also the numbers localstripe declines on attach.
        raise PaymentRefused(DECLINED)

    customer = session.customer or Customer(email=email, name=billing["name"]).id
    if session.mode == "subscription":
        PaymentMethod._api_attach(pm.id, customer=customer)
        Customer._api_update(customer, invoice_settings={"default_payment_method": pm.id})
        price_id, quantity = session._line_items[0]
        params: dict[str, Any] = {
            "customer": customer,
            "items": [{"price": price_id, "quantity": quantity}],
            "metadata": dict(session._subscription_data["metadata"]),
            "default_payment_method": pm.id,
        }
        if session._subscription_data["description"]:
            params["description"] = session._subscription_data["description"]
        sub = Subscription._api_create(**params)
        if sub.status != "active":  # Not expected after the checks above.
            raise PaymentRefused(DECLINED)
        session.subscription = sub.id
        session.invoice = sub.latest_invoice
    else:
        pi = PaymentIntent(amount=session.amount_total, currency=session.currency,
                           customer=customer, payment_method=pm.id,
                           metadata=dict(session._payment_intent_data["metadata"]))
        pi.description = session._payment_intent_data["description"]
        pi._confirm(on_failure_now=lambda: None)
        if pi.status != "succeeded":
            raise PaymentRefused(DECLINED)
        session.payment_intent = pi.id
    cus = Customer._api_retrieve(customer)
    session.customer = customer
    session.customer_details = {"address": None, "email": cus.email or email, "name": billing["name"],
                                "phone": None, "tax_exempt": "none", "tax_ids": []}
    session.status = "complete"
    session.payment_status = "paid"
    session.url = None
    emit("checkout.session.completed", session)


def add_page_routes(app: web.Application) -> None:
    app.router.add_get(PAGE_PATH + "{id}", show_page)
    app.router.add_post(PAGE_PATH + "{id}", submit_page)

