"""Saved cards charged later, as Stripe does it (patches applied by ``extension.install``).

* A PaymentIntent confirmed **off session** (``off_session=true``, auto-recharge) with a
  card that needs 3-D Secure is declined with ``authentication_required``: Stripe answers
  402 ``card_error`` with the PaymentIntent in ``requires_payment_method`` and the card in
  ``last_payment_error.payment_method``, so the customer can come back and confirm it on
  session (Stripe.js ``confirmCardPayment(client_secret, {payment_method})``). The
  exception is Stripe's documented one: 4000 0025 0000 3155 needs authentication once,
  and a card of that number saved to a customer (set up) then pays off session.
  4000 0027 6000 3184 needs it every time. localstripe ignored ``off_session`` and left
  such a PaymentIntent in ``requires_action`` with nobody there to act.
* A SetupIntent is created with ``allowed_payment_method_types`` (2026-10-28.endive), as a
  PaymentIntent is (api_version.py); the old ``payment_method_types`` is refused.
* Detaching a customer's default card clears ``invoice_settings.default_payment_method``,
  as Stripe does (localstripe kept the detached id there).
* A card's ``brand`` follows its number (Mastercard 5..., Amex 34/37); localstripe says
  ``visa`` for every card.
"""

from __future__ import annotations

from typing import Any

from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import PaymentIntent, PaymentMethod, SetupIntent

from .common import unknown

SET_UP_ONCE = "4000002500003155"  # authenticates once; once saved, pays off session
AUTHENTICATION_REQUIRED = (
    "Your card was declined. This transaction requires authentication.")


class AuthenticationRequired(UserError):
    def __init__(self, pi: PaymentIntent) -> None:
        super().__init__(402, AUTHENTICATION_REQUIRED, {
            "code": "authentication_required", "decline_code": "authentication_required",
            "payment_intent": pi._export()})
        self.body["error"]["type"] = "card_error"


def _needs_customer(pm: PaymentMethod) -> bool:
    if not pm._requires_authentication():
        return False
    return not (getattr(pm, "_card_number", "") == SET_UP_ONCE and pm.customer)


def _create_payment_intent(cls: type[PaymentIntent], confirm: Any = None,
                           off_session: Any = None, **data: Any) -> PaymentIntent:
    off = resources.try_convert_to_bool(off_session) is True
    pm_id = data.get("payment_method")
    if off and resources.try_convert_to_bool(confirm) is True and isinstance(pm_id, str):
        pm = PaymentMethod._api_retrieve(pm_id)
        if _needs_customer(pm):
            pi = _original_create(cls, **data)
            pi.payment_method = None  # requires_payment_method, as Stripe leaves it
            pi._ext_last_error = {
                "type": "card_error", "code": "authentication_required",
                "decline_code": "authentication_required", "message": AUTHENTICATION_REQUIRED,
                "payment_method": pm._export()}
            raise AuthenticationRequired(pi)
    return _original_create(cls, confirm=confirm, off_session=off_session, **data)


def _create_setup_intent(cls: type[SetupIntent], **params: Any) -> SetupIntent:
    if "payment_method_types" in params:
        unknown({"payment_method_types": params["payment_method_types"]})
    if "allowed_payment_method_types" in params:
        params["payment_method_types"] = params.pop("allowed_payment_method_types")
    return _original_setup_create(cls, **params)


def _last_payment_error(self: PaymentIntent) -> Any:
    ext = getattr(self, "_ext_last_error", None)
    return ext if ext is not None else _original_last_error.fget(self)  # type: ignore[union-attr]


def _detach(cls: type[PaymentMethod], id: str, **kwargs: Any) -> PaymentMethod:
    customer_id = None
    pm = resources.store.get(f"payment_method:{id}") if isinstance(id, str) else None
    if pm is not None:
        customer_id = pm.customer
    detached = _original_detach(cls, id, **kwargs)
    customer = resources.store.get(f"customer:{customer_id}") if customer_id else None
    if customer is not None and customer.invoice_settings.get("default_payment_method") == id:
        customer.invoice_settings["default_payment_method"] = None
    return detached


def _init_payment_method(self: PaymentMethod, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    number = getattr(self, "_card_number", "")
    if self.type == "card" and number:
        self.card["brand"] = ("mastercard" if number[0] in "25" else
                              "amex" if number[:2] in ("34", "37") else "visa")


_original_create: Any = None
_original_setup_create: Any = SetupIntent._api_create.__func__
_original_last_error: Any = PaymentIntent.__dict__["last_payment_error"]
_original_detach: Any = PaymentMethod.__dict__["_api_detach"].__func__
_original_init: Any = PaymentMethod.__init__


def install() -> None:
    """Apply the patches (after api_version.install, whose PaymentIntent create this wraps)."""
    global _original_create
    _original_create = PaymentIntent.__dict__["_api_create"].__func__
    PaymentIntent._api_create = classmethod(_create_payment_intent)
    PaymentIntent.last_payment_error = property(_last_payment_error)
    SetupIntent._api_create = classmethod(_create_setup_intent)
    PaymentMethod._api_detach = classmethod(_detach)
    PaymentMethod.__init__ = _init_payment_method


ROUTES = [
    # localstripe's own route holds the unpatched method; this looks it up per request.
    ("POST", "/v1/payment_methods/{id}/detach", lambda **kw: PaymentMethod._api_detach(**kw)),
]
