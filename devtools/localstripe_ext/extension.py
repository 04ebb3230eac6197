"""Server-side patches and endpoints that bring localstripe closer to Stripe.

``install()`` must run before ``localstripe.server`` is imported: that import registers
the routes listed in ``localstripe.resources.extra_apis`` (ahead of the generic
``/v1/<resource>s/{id}`` routes) and the store starts being written to.

Why each patch exists:

* ``Store.dump_to_disk`` becomes a no-op. localstripe pickles its whole store to the fixed
  file /tmp/localstripe.pickle after every write: each write gets slower as the store
  grows, and every instance on the machine (parallel test runs, a demo beside a test
  run) shares and overwrites that file.
* ``PaymentMethod._charging_is_declined`` is also true for the numbers localstripe only
  declines on attach (4000000000000002 and friends). Stripe declines those when a charge
  is attempted; unpatched, a PaymentIntent confirmed with a fresh (unattached) 0002
  PaymentMethod succeeds.
* ``PaymentMethod._api_attach`` refuses a PaymentMethod attached to another customer, as
  Stripe does; localstripe moved it over.
* ``Charge._raise_failure`` raises Stripe's card-error shape (type ``card_error``,
  ``decline_code``, ``payment_intent``); localstripe's is an ``invalid_request_error``
  without them. The ``stripe`` library raises ``CardError`` for either (402).
* ``Idempotency-Key`` is honoured as Stripe does (localstripe ignores it): a POST repeated
  with the same key and parameters gets the first answer, other parameters are a 400
  ``idempotency_error``, and a key over 255 characters is a 400 ``invalid_request_error``.
  Tally relies on it: two concurrent first top-ups of a customer create its Stripe
  customer once, and a key Tally derives from a client's own key must stay within 255.
* ``GET /_ext/store`` (test-only, secret key): a digest of every object in the store, so a
  test can check that a request it expects to change nothing at Stripe changed nothing.
* Endpoints under ``/js.stripe.com/tally/`` back the Stripe.js overrides in
  ``stripe_js_ext.js`` (localstripe's own ``confirmCardPayment`` ignores the card data it
  is given). Paths under ``/js.stripe.com/`` skip localstripe's API-key check, like the
  publishable-key calls of real Stripe.js; each endpoint checks the client secret instead.
  localstripe's request wrapper drops the ``key`` field before the handler sees it.

Billing, Checkout and the Customer Portal live in their own modules and add their routes
to ``ROUTES``: ``billing.py`` (Prices, subscription and invoice patches, the renewal
simulator), ``checkout.py`` (Checkout Sessions and the hosted payment page), ``portal.py``
(portal configurations and sessions and the hosted portal page).

The hosted pages must open in a browser without the secret key. localstripe's auth
middleware lets through exactly two path prefixes, ``/js.stripe.com/`` and ``/_config/``,
and demands ``Authorization: Bearer sk_...`` everywhere else. The smallest change is no
change to that middleware: the pages live under ``/js.stripe.com/tally/checkout/...`` and
``/js.stripe.com/tally/billing_portal/...``. Their credential is the unguessable id or
token in the URL, as with Stripe's own ``checkout.stripe.com``/``billing.stripe.com``
links. Everything under ``/v1/`` (and the renewal simulator under ``/_ext/``) still
needs the secret key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import (
    Charge,
    Event,
    PaymentIntent,
    PaymentMethod,
    SetupIntent,
    schedule_webhook,
    try_convert_to_bool,
)

from . import api_version, billing, checkout, portal, saved_cards
from .common import set_public_url

JS_PATH = "/js.stripe.com/tally/v3.js"
DECLINED = "Your card was declined."
AUTH_FAILED = (
    "We are unable to authenticate your payment method. "
    "Please choose a different payment method and try again."
)
THREE_D_SECURE = {
    "type": "use_stripe_sdk",
    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": ""},
}


class CardDeclined(UserError):
    """A 402 with Stripe's ``card_error`` type (``UserError`` forces invalid_request_error)."""

    def __init__(self, contents: dict[str, Any], message: str = DECLINED) -> None:
        super().__init__(
            402, message, {"code": "card_declined", "decline_code": "generic_decline", **contents}
        )
        self.body["error"]["type"] = "card_error"


# --- Patches -----------------------------------------------------------------------------

_original_charging_is_declined = PaymentMethod._charging_is_declined


def _charging_is_declined(self: PaymentMethod) -> bool:
    return bool(_original_charging_is_declined(self) or self._attaching_is_declined())


def _raise_failure(self: Charge) -> None:
    contents: dict[str, Any] = {"code": self.failure_code, "charge": self.id}
    if self.payment_intent:
        contents["payment_intent"] = PaymentIntent._api_retrieve(self.payment_intent)._export()
    raise CardDeclined(contents, self.failure_message or DECLINED)


_original_attach = PaymentMethod.__dict__["_api_attach"].__func__


def _attach(cls: type[PaymentMethod], id: str, customer: Any = None, **kwargs: Any) -> PaymentMethod:
    """Stripe refuses to attach a PaymentMethod that belongs to another customer (400);
    localstripe moved it to the new one."""
    pm = resources.store.get(f"payment_method:{id}") if isinstance(id, str) else None
    if pm is not None and pm.customer not in (None, customer):
        raise UserError(400, "The payment method you provided has already been attached to a "
                             "customer.", {"param": "payment_method",
                                           "code": "payment_method_unexpected_state"})
    return _original_attach(cls, id, customer=customer, **kwargs)


# --- Endpoints for stripe_js_ext.js ------------------------------------------------------


def _check(obj: PaymentIntent | SetupIntent, client_secret: object, extra: dict[str, Any]) -> None:
    if extra:
        raise UserError(400, "Unexpected " + ", ".join(extra))
    if not isinstance(client_secret, str) or not hmac.compare_digest(
        client_secret.encode(), obj.client_secret.encode()
    ):
        raise UserError(401, "Unauthorized")


def _payment_method(payment_method: object, payment_method_data: object) -> PaymentMethod | None:
    """The PaymentMethod to confirm with: new from card data, or an existing ``pm_...``."""
    if payment_method_data is not None:
        if not isinstance(payment_method_data, dict):
            raise UserError(400, "Bad request")
        return PaymentMethod(**payment_method_data)
    if payment_method is not None:
        if not isinstance(payment_method, str):
            raise UserError(400, "Bad request")
        return PaymentMethod._api_retrieve(payment_method)
    return None


def confirm_payment_intent(
    id: str,
    client_secret: str | None = None,
    payment_method: str | None = None,
    payment_method_data: dict[str, Any] | None = None,
    **extra: Any,
) -> PaymentIntent:
    """Stripe.js's confirm: set the PaymentMethod, then localstripe's own ``_confirm``.

    Returns the PaymentIntent (``requires_action`` for 3-D Secure cards; the page then
    calls localstripe's ``/_authenticate``). A decline answers 402 ``card_error`` with the
    PaymentIntent, which is left in ``requires_payment_method`` with ``last_payment_error``.
    """
    pi = PaymentIntent._api_retrieve(id)
    _check(pi, client_secret, extra)
    if payment_method is None and payment_method_data is None and pi.status == "requires_action":
        return pi  # Confirmed server-side with a 3-D Secure card: only the modal is left.
    if pi.status not in ("requires_payment_method", "requires_confirmation"):
        raise UserError(
            400,
            f"You cannot confirm this PaymentIntent because it has a status of {pi.status}.",
            {"code": "payment_intent_unexpected_state", "payment_intent": pi._export()},
        )
    pm = _payment_method(payment_method, payment_method_data)
    if pm is None and pi.payment_method is None:
        raise UserError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            {"code": "payment_intent_unexpected_state", "payment_intent": pi._export()},
        )
    if pm is not None:
        pi.payment_method = pm.id
        pi._ext_last_error = None  # an off-session decline (saved_cards.py), now retried
    pi.latest_charge = None  # Forget a declined attempt so that the customer can retry.
    pi._confirm(on_failure_now=pi._report_failure)  # Emits payment_intent.succeeded.
    return pi


def _setup_succeeded(seti: SetupIntent) -> None:
    seti.status = "succeeded"
    seti.next_action = None
    if seti.customer:  # Stripe attaches the PaymentMethod to the SetupIntent's customer.
        PaymentMethod._api_retrieve(seti.payment_method).customer = seti.customer
    schedule_webhook(Event("setup_intent.succeeded", seti))


def confirm_setup_intent(
    id: str,
    client_secret: str | None = None,
    payment_method: str | None = None,
    payment_method_data: dict[str, Any] | None = None,
    **extra: Any,
) -> SetupIntent:
    """Like ``confirm_payment_intent`` for SetupIntents.

    localstripe's own SetupIntent confirm cancels the SetupIntent on a decline or a failed
    3-D Secure step and answers errors without Stripe's type and codes; Stripe leaves it in
    ``requires_payment_method`` with ``last_setup_error`` so the customer can retry.
    """
    seti = SetupIntent._api_retrieve(id)
    _check(seti, client_secret, extra)
    if payment_method is None and payment_method_data is None and seti.status == "requires_action":
        return seti
    if seti.status != "requires_payment_method":
        raise UserError(
            400,
            f"You cannot confirm this SetupIntent because it has a status of {seti.status}.",
            {"code": "setup_intent_unexpected_state", "setup_intent": seti._export()},
        )
    pm = _payment_method(payment_method, payment_method_data)
    if pm is None:
        raise UserError(400, "Missing payment_method", {"code": "parameter_missing"})
    seti.last_setup_error = None
    if pm._attaching_is_declined():
        seti.last_setup_error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": DECLINED,
            "payment_method": pm._export(),
        }
        raise CardDeclined({"setup_intent": seti._export()})
    seti.payment_method = pm.id
    if pm._requires_authentication():
        seti.status = "requires_action"
        seti.next_action = THREE_D_SECURE
    else:
        _setup_succeeded(seti)
    return seti


def authenticate_setup_intent(
    id: str, client_secret: str | None = None, success: object = False, **extra: Any
) -> SetupIntent:
    """Outcome of the 3-D Secure modal for a SetupIntent (``?success=true|false``)."""
    seti = SetupIntent._api_retrieve(id)
    _check(seti, client_secret, extra)
    if seti.status != "requires_action":
        raise UserError(400, "Bad request", {"code": "setup_intent_unexpected_state"})
    if try_convert_to_bool(success) is True:
        _setup_succeeded(seti)
    else:
        seti.status = "requires_payment_method"
        seti.next_action = None
        seti.last_setup_error = {
            "type": "invalid_request_error",
            "code": "setup_intent_authentication_failure",
            "message": AUTH_FAILED,
            "payment_method": PaymentMethod._api_retrieve(seti.payment_method)._export(),
        }
        seti.payment_method = None
    return seti


# (method, path, function returning an object with ``_export()``), registered through
# localstripe's ``extra_apis`` ahead of its own routes (so an entry here takes precedence,
# as ``POST /v1/invoices/{id}/pay`` does). localstripe's wrapper passes the JSON or form
# body and the query string as keyword arguments, pops ``expand`` and applies it to the
# answer. ``/v1/...`` and ``/_ext/...`` need the secret key (``Authorization: Bearer
# sk_...``), as on Stripe; ``/js.stripe.com/...`` does not (see the module docstring).
ROUTES: list[tuple[str, str, Callable[..., Any]]] = [
    ("POST", "/js.stripe.com/tally/payment_methods", PaymentMethod._api_create),
    ("POST", "/js.stripe.com/tally/payment_intents/{id}/confirm", confirm_payment_intent),
    ("POST", "/js.stripe.com/tally/setup_intents/{id}/confirm", confirm_setup_intent),
    ("POST", "/js.stripe.com/tally/setup_intents/{id}/_authenticate", authenticate_setup_intent),
    # localstripe's own routes hold the unpatched methods; these look them up per request.
    ("POST", "/v1/payment_methods/{id}/attach", lambda **kw: PaymentMethod._api_attach(**kw)),
    ("POST", "/v1/payment_intents/{id}/cancel", lambda **kw: PaymentIntent._api_cancel(**kw)),
    *api_version.ROUTES,  # /v1/invoice_payments
    *saved_cards.ROUTES,  # POST /v1/payment_methods/{id}/detach
    *billing.ROUTES,  # /v1/prices, /v1/invoices/{id}/pay|void, POST /_ext/subscriptions/{id}/renew
    *checkout.ROUTES,  # /v1/checkout/sessions
    *portal.ROUTES,  # /v1/billing_portal/configurations, /v1/billing_portal/sessions
]


# --- Installation ------------------------------------------------------------------------


def _no_dump(self: resources.Store) -> None:
    """Keep the store in memory only."""


def install(public_url: str = "http://127.0.0.1:8420") -> None:
    """Apply the patches and queue ``ROUTES``; call before importing ``localstripe.server``.

    ``public_url`` is the origin browsers reach this server at: the hosted Checkout and
    portal page URLs (``url`` of sessions) are built from it.
    """
    if "localstripe.server" in sys.modules:
        raise RuntimeError("install() must run before localstripe.server is imported")
    set_public_url(public_url)
    resources.Store.dump_to_disk = _no_dump
    PaymentMethod._charging_is_declined = _charging_is_declined
    PaymentMethod._api_attach = classmethod(_attach)
    Charge._raise_failure = _raise_failure
    api_version.install()
    saved_cards.install()
    billing.install()
    resources.extra_apis[:0] = ROUTES  # Registered first, ahead of localstripe's own.


async def extended_stripe_js(request: web.Request) -> web.Response:
    """localstripe's fake Stripe.js followed by ``stripe_js_ext.js`` (read on each request),
    both inside one function. Loaded as it is, localstripe's script declares ``class
    Element`` at the top level, which shadows the DOM's ``Element`` for every script on the
    page (htmx then processes no element); real Stripe.js adds only ``window.Stripe``. In
    the function, its names stay its own and only ``Stripe`` becomes global."""
    original = Path(resources.__file__).with_name("localstripe-v3.js").read_text()
    overrides = Path(__file__).with_name("stripe_js_ext.js").read_text()
    return web.Response(
        text="(function () {\n" + original + "\n" + overrides + "\n})();\n",
        content_type="application/javascript",
        headers={"Cache-Control": "no-store"},
    )


MAX_IDEMPOTENCY_KEY = 255  # Stripe's limit on Idempotency-Key


# Answers to POSTs with an Idempotency-Key, by (secret key, Idempotency-Key): what the first
# request was (method, path, a digest of its body) and its answer. Kept while the server runs
# (Stripe keeps them 24 hours).
_ANSWERED: dict[tuple[str, str], tuple[tuple[str, str, str], bytes, int, str]] = {}
_IN_FLIGHT: dict[tuple[str, str], asyncio.Lock] = {}


@web.middleware
async def idempotency_keys(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """``Idempotency-Key`` as Stripe honours it: over 255 characters is a 400; a POST sent
    again with the same key and the same parameters gets the first answer (a concurrent one
    waits for it), with other parameters a 400 ``idempotency_error``. localstripe itself
    ignores the header, so two concurrent "create the customer once" calls made two."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        return web.json_response({"error": {
            "type": "invalid_request_error",
            "message": f"Keys for idempotent requests can only be {MAX_IDEMPOTENCY_KEY} "
                       "characters long and cannot contain whitespace.",
        }}, status=400)
    if key is None or request.method != "POST":
        return await handler(request)
    slot = (request.headers.get("Authorization", ""), key)
    request_is = (request.method, request.path_qs, hashlib.sha256(await request.read()).hexdigest())
    async with _IN_FLIGHT.setdefault(slot, asyncio.Lock()):
        earlier = _ANSWERED.get(slot)
        if earlier is not None:
            if earlier[0] != request_is:
                return web.json_response({"error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same "
                               f"parameters they were first used with. Try using a key other "
                               f"than '{key}' if you meant to execute a different request.",
                }}, status=400)
            replay = web.Response(body=earlier[1], status=earlier[2], content_type=earlier[3])
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = await handler(request)
        except UserError as error:  # a refusal is an answer too, replayed like any other
            response = error.to_response()
        if isinstance(response, web.Response) and response.status < 500 and response.body is not None:
            _ANSWERED[slot] = (request_is, bytes(response.body), response.status,
                               response.content_type)
        return response


async def store_digest(request: web.Request) -> web.Response:
    """``GET /_ext/store``: ``{"objects": {"<kind>:<id>": sha256 of the object}}`` (test-only;
    localstripe's auth middleware asks for the secret key)."""
    objects = {}
    for key, obj in list(resources.store.items()):
        try:
            data: Any = obj._export()
        except Exception:  # an object that cannot export itself alone is still compared
            data = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
        text = json.dumps(data, sort_keys=True, default=str)
        objects[key] = hashlib.sha256(text.encode()).hexdigest()
    return web.json_response({"objects": objects})


def add_routes(app: web.Application) -> None:
    """The routes that answer something else than JSON, so cannot go through ``extra_apis``
    (the extended Stripe.js, the hosted Checkout and portal pages, the store digest); the
    check that a request asks for no other API version than ``api_version.API_VERSION``;
    and Idempotency-Key as Stripe honours it."""
    app.middlewares.append(api_version.check_version)
    app.middlewares.append(idempotency_keys)
    app.router.add_get("/_ext/store", store_digest)
    app.router.add_get(JS_PATH, extended_stripe_js)
    checkout.add_page_routes(app)
    portal.add_page_routes(app)
