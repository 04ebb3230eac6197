"""Prices, and subscriptions and invoices closer to Stripe's.

Prices: ``POST/GET /v1/prices``, ``GET/POST /v1/prices/{id}``. localstripe only knows the
legacy Plans, and its subscriptions and invoices are built on them, so every recurring
Price is backed by a localstripe Plan with the *same id* (``price_...``). Subscriptions
then accept ``items[][price]`` (translated to ``plan``), and subscription items carry a
``price`` next to localstripe's ``plan`` (invoice lines name it in ``pricing``, see
``api_version.py``).

Patches to localstripe's Subscription, each because Stripe does it and Tally relies on it:

* create accepts ``default_payment_method`` (used to pay its invoices, before the
  customer's default), ``payment_behavior`` (``allow_incomplete``, ``error_if_incomplete``
  as localstripe, and ``default_incomplete``: the first invoice is left open with an
  unconfirmed PaymentIntent, for Stripe.js to confirm), ``payment_settings``,
  ``collection_method=charge_automatically``, ``off_session`` and ``description``;
* update accepts ``payment_behavior``, ``proration_behavior`` (accepted, no prorations),
  ``default_payment_method``, ``cancellation_details``; ``cancel_at_period_end`` sets
  ``cancel_at`` (the period end) and ``canceled_at``, ``false`` clears them; and every
  update emits ``customer.subscription.updated`` with ``previous_attributes`` (localstripe
  only emits created and deleted); so do the status changes after a payment
  (incomplete -> active, active -> past_due);
* a first payment that needs 3-D Secure (4000 0025 0000 3155 and localstripe's other
  authentication cards) leaves the subscription ``incomplete`` with
  ``latest_invoice.payment_intent`` in ``requires_action`` (localstripe already does;
  Stripe.js ``confirmCardPayment(client_secret)`` then shows the modal); when that
  authentication fails, the subscription stays ``incomplete``, its invoice ``open`` and
  the PaymentIntent ``requires_payment_method``, as on Stripe, where localstripe
  cancelled the subscription at once (the app decides: cancel it, or retry);
* periods honour ``interval_count`` and move on with the renewal simulator;
* items carry ``current_period_start``/``_end`` (API version 2026-10-28.endive has them only
  there), subscriptions ``currency``, ``billing_cycle_anchor``, ``cancellation_details``.

Invoices: finalized invoices get a ``number`` and every invoice Stripe's ``billing_reason``,
``POST /v1/invoices/{id}/void`` voids an open one, ``invoice.finalized`` is emitted, every
``invoice.payment_succeeded`` is followed by ``invoice.paid`` (Stripe sends both), a failed
payment emits ``invoice.payment_failed``, subscription lines are described as Stripe does
(``1 \u00d7 Tally Pro (at $49.00 / month)``, with a multiplication sign), and
``POST /v1/invoices/{id}/pay`` accepts ``payment_method`` and ``paid_out_of_band`` and
answers a decline with a 402 card_error.

Renewal simulator (test-only, not a Stripe API): ``POST /_ext/subscriptions/{id}/renew``
with ``{"outcome": "paid" | "failed"}``; see ``renew_subscription``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dateutil.relativedelta import relativedelta
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Event,
    Invoice,
    InvoiceItem,
    InvoiceLineItem,
    List,
    PaymentIntent,
    PaymentMethod,
    Plan,
    Product,
    StripeObject,
    Subscription,
    SubscriptionItem,
    random_id,
    store,
)

from .api_version import number_prefix
from .common import (
    DeepExport,
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_str,
    emit,
    emit_updated,
    enum,
    fail,
    merge_metadata,
    missing,
    newest_first,
    no_such,
    now,
    opt_bool,
    opt_str,
    page_of,
    price_text,
    product_name,
    retrieve,
    unknown,
    unsupported,
    where,
)
from .common import metadata as parse_metadata

INTERVALS = ("day", "week", "month", "year")
LIVE_STATUSES = ("active", "trialing", "past_due")


# --- Prices -------------------------------------------------------------------------------


class Price(DeepExport, StripeObject):
    """A Stripe Price. Recurring ones are mirrored by a localstripe Plan with the same id."""

    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        currency: Any = None,
        unit_amount: Any = None,
        unit_amount_decimal: Any = None,
        recurring: Any = None,
        product: Any = None,
        product_data: Any = None,
        nickname: Any = None,
        lookup_key: Any = None,
        transfer_lookup_key: Any = None,
        metadata: Any = None,
        active: Any = None,
        tax_behavior: Any = None,
        billing_scheme: Any = None,
        **extra: Any,
    ) -> None:
        unknown(extra)
        if currency is None:
            missing("currency")
        currency = as_str(currency, "currency").lower()
        if unit_amount is None and unit_amount_decimal is None:
            missing("unit_amount")
        if unit_amount is not None:
            amount = as_int(unit_amount, "unit_amount", minimum=0)
        else:
            try:
                decimal = Decimal(str(unit_amount_decimal))
            except InvalidOperation:
                fail("Invalid decimal: unit_amount_decimal", "unit_amount_decimal")
            if decimal != decimal.to_integral_value() or decimal < 0:
                unsupported("fractional unit_amount_decimal", "unit_amount_decimal")
            amount = int(decimal)
        if billing_scheme not in (None, "per_unit"):
            unsupported("tiered prices", "billing_scheme")
        recurring_shape = _recurring(recurring) if recurring is not None else None
        if product is not None and product_data is not None:
            fail("You may only specify one of these parameters: product, product_data.",
                 "product", "parameters_exclusive")
        if product is not None:
            retrieve(Product, product, "product", "product")
        elif product_data is not None:
            product_data = dict(as_dict(product_data, "product_data"))
            if not product_data.get("name"):
                missing("product_data[name]")
            product_data["metadata"] = _metadata_or_none(product_data.get("metadata"),
                                                         "product_data[metadata]")
            if "active" in product_data:
                product_data["active"] = as_bool(product_data["active"], "product_data[active]")
            unknown({k: v for k, v in product_data.items()
                     if k not in ("name", "metadata", "active", "statement_descriptor")},
                    "product_data")
        else:
            missing("product")
        nickname = opt_str(nickname, "nickname")
        lookup_key = opt_str(lookup_key, "lookup_key")
        if lookup_key is not None and len(lookup_key) > 200:
            fail("Invalid lookup_key: must be at most 200 characters", "lookup_key")
        transfer = as_bool(transfer_lookup_key, "transfer_lookup_key") if transfer_lookup_key \
            is not None else False
        meta = parse_metadata(metadata)
        active = as_bool(active, "active") if active is not None else True
        tax_behavior = enum(tax_behavior or "unspecified", "tax_behavior",
                            ("inclusive", "exclusive", "unspecified"))
        holder = _price_with_lookup_key(lookup_key)
        if holder is not None and not transfer:
            fail(f"A price (`{holder.id}`) already uses that lookup key.", "lookup_key")

        # All checks are done: create.
        if product_data is not None:
            product = Product(type="service", **product_data).id
        id = self._id_prefix + random_id(24)
        if recurring_shape is not None:
            Plan(id=id, amount=amount, currency=currency, interval=recurring_shape["interval"],
                 interval_count=recurring_shape["interval_count"], product=product,
                 nickname=nickname, metadata=dict(meta), active=active)
        super().__init__(id)
        if holder is not None:
            holder.lookup_key = None
        self.active = active
        self.billing_scheme = "per_unit"
        self.currency = currency
        self.custom_unit_amount = None
        self.lookup_key = lookup_key
        self.metadata = meta
        self.nickname = nickname
        self.product = product
        self.recurring = recurring_shape
        self.tax_behavior = tax_behavior
        self.tiers_mode = None
        self.transform_quantity = None
        self.type = "recurring" if recurring_shape is not None else "one_time"
        self.unit_amount = amount
        self.unit_amount_decimal = str(amount)
        emit("price.created", self)


def _metadata_or_none(value: Any, param: str) -> dict[str, str] | None:
    return parse_metadata(value, param) if value is not None else None


def _recurring(value: Any) -> dict[str, Any]:
    value = dict(as_dict(value, "recurring"))
    interval = value.pop("interval", None)
    if interval is None:
        missing("recurring[interval]")
    interval = enum(interval, "recurring[interval]", INTERVALS)
    count = as_int(value.pop("interval_count", 1), "recurring[interval_count]", minimum=1)
    usage_type = value.pop("usage_type", "licensed")
    if usage_type != "licensed":
        unsupported("metered prices", "recurring[usage_type]")
    unknown(value, "recurring")
    return {"interval": interval, "interval_count": count, "meter": None,
            "trial_period_days": None, "usage_type": "licensed"}


def _price_with_lookup_key(lookup_key: str | None) -> Price | None:
    if lookup_key is None:
        return None
    return next((p for p in newest_first(Price) if p.lookup_key == lookup_key), None)


def price_shape(plan: Plan) -> dict[str, Any]:
    """The Price for a localstripe Plan: its own Price, or one derived from a legacy plan."""
    price = store.get("price:" + plan.id)
    if price is not None:
        return price._export()
    return {
        "id": plan.id, "object": "price", "active": plan.active,
        "billing_scheme": plan.billing_scheme, "created": plan.created,
        "currency": plan.currency, "custom_unit_amount": None, "livemode": False,
        "lookup_key": None, "metadata": dict(plan.metadata or {}), "nickname": plan.nickname,
        "product": plan.product,
        "recurring": {"interval": plan.interval,
                      "interval_count": plan.interval_count, "meter": None,
                      "trial_period_days": plan.trial_period_days, "usage_type": plan.usage_type},
        "tax_behavior": "unspecified", "tiers_mode": plan.tiers_mode, "transform_quantity": None,
        "type": "recurring", "unit_amount": plan.amount, "unit_amount_decimal": str(plan.amount),
    }


class _Shape:
    """An already exported object, for a legacy Plan answered as a Price."""

    def __init__(self, shape: dict[str, Any]) -> None:
        self.id = shape["id"]
        self._shape = shape

    def _export(self, expand: list[str] | None = None) -> dict[str, Any]:
        return copy.deepcopy(self._shape)


def create_price(**params: Any) -> Price:
    return Price(**params)


def retrieve_price(id: str, **extra: Any) -> Price | _Shape:
    unknown(extra)
    price = store.get("price:" + id)
    if price is not None:
        return price
    plan = store.get("plan:" + id)
    if plan is not None:  # Stripe answers legacy plans as prices too.
        return _Shape(price_shape(plan))
    no_such("price", id)


def update_price(
    id: str,
    active: Any = None,
    metadata: Any = None,
    nickname: Any = None,
    lookup_key: Any = None,
    transfer_lookup_key: Any = None,
    tax_behavior: Any = None,
    **extra: Any,
) -> Price:
    unknown(extra)
    price: Price = retrieve(Price, id, "price")
    before = price._export()
    if lookup_key is not None:
        key = opt_str(lookup_key, "lookup_key")
        holder = _price_with_lookup_key(key)
        transfer = transfer_lookup_key is not None and as_bool(transfer_lookup_key,
                                                                "transfer_lookup_key")
        if holder is not None and holder is not price:
            if not transfer:
                fail(f"A price (`{holder.id}`) already uses that lookup key.", "lookup_key")
            holder.lookup_key = None
        price.lookup_key = key
    if active is not None:
        price.active = as_bool(active, "active")
    if nickname is not None:
        price.nickname = opt_str(nickname, "nickname")
    if tax_behavior is not None:
        price.tax_behavior = enum(tax_behavior, "tax_behavior", ("inclusive", "exclusive"))
    price.metadata = merge_metadata(price.metadata, metadata)
    plan = store.get("plan:" + price.id)
    if plan is not None:
        plan.active, plan.nickname, plan.metadata = price.active, price.nickname, dict(price.metadata)
    emit_updated("price.updated", price, before)
    return price


def list_prices(
    active: Any = None,
    currency: Any = None,
    product: Any = None,
    type: Any = None,
    lookup_keys: Any = None,
    limit: Any = None,
    starting_after: Any = None,
    **extra: Any,
) -> List:
    unknown(extra)
    prices = where(newest_first(Price), "active", opt_bool(active, "active"))
    if currency is not None:
        prices = [p for p in prices if p.currency == as_str(currency, "currency").lower()]
    prices = where(prices, "product", product)
    if type is not None:
        prices = where(prices, "type", enum(type, "type", ("one_time", "recurring")))
    if lookup_keys is not None:
        keys = [as_str(k, "lookup_keys") for k in as_list(lookup_keys, "lookup_keys")]
        if len(keys) > 10:
            fail("Invalid lookup_keys: at most 10 keys", "lookup_keys")
        prices = [p for p in prices if p.lookup_key in keys]
    return page_of("/v1/prices", prices, limit, starting_after)


def plan_for_price(price_id: Any, param: str) -> str:
    """The Plan id behind a recurring price (the same id), for localstripe's subscriptions."""
    if store.get("plan:" + str(price_id)) is not None:
        return str(price_id)
    if store.get("price:" + str(price_id)) is not None:
        fail("The price specified is set to `type=one_time` but this field only accepts "
             "prices with `type=recurring`.", param)
    no_such("price", price_id, param)


def _items_with_plans(items: Any, param: str = "items") -> list[dict[str, Any]]:
    result = []
    for i, item in enumerate(as_list(items, param)):
        item = dict(as_dict(item, f"{param}[{i}]"))
        if "price_data" in item:
            unsupported("price_data (create a Price first)", f"{param}[{i}][price_data]")
        if "price" in item:
            if "plan" in item:
                fail("You may only specify one of these parameters: plan, price.",
                     f"{param}[{i}][price]", "parameters_exclusive")
            item["plan"] = plan_for_price(item.pop("price"), f"{param}[{i}][price]")
        result.append(item)
    return result


# --- Periods ------------------------------------------------------------------------------


def _shift(timestamp: int, plan: Plan, periods: int) -> int:
    count = plan.interval_count * periods
    delta = {
        "day": relativedelta(days=count), "week": relativedelta(weeks=count),
        "month": relativedelta(months=count), "year": relativedelta(years=count),
    }[plan.interval]
    return int((datetime.fromtimestamp(timestamp, UTC) + delta).timestamp())


def _current_period(self: SubscriptionItem) -> dict[str, int]:
    """Period number ``_ext_periods`` (0 at creation, +1 per simulated renewal) from the
    start date; localstripe's own ignores ``interval_count`` and never moves on."""
    anchor, periods = now(), 0
    if self._subscription:
        sub = Subscription._api_retrieve(self._subscription)
        anchor, periods = sub.start_date, getattr(sub, "_ext_periods", 0)
    return {"start": _shift(anchor, self.plan, periods), "end": _shift(anchor, self.plan, periods + 1)}


# --- Subscriptions ------------------------------------------------------------------------

_original_subscription_init = Subscription.__init__
_original_create_invoice = Subscription._create_invoice
_original_initial_success = Subscription._on_initial_payment_success
_original_recurring_failure = Subscription._on_recurring_payment_failure
_original_initial_failure_later = Subscription._on_initial_payment_failure_later
_original_subscription_delete = Subscription.__dict__["_api_delete"].__func__
_original_subscription_update = Subscription._update

_PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete",
                      "pending_if_incomplete")
_NO_CANCELLATION = {"comment": None, "feedback": None, "reason": None}


def _attached_payment_method(pm_id: Any, customer: str, param: str) -> str:
    try:
        pm = PaymentMethod._api_retrieve(as_str(pm_id, param))
    except UserError:
        no_such("PaymentMethod", pm_id, param)
    if pm.customer != customer:
        fail(f"The customer does not have a payment method with the ID {pm_id}. The payment "
             "method must be attached to the customer.", param)
    return pm.id


def _subscription_init(
    self: Subscription,
    customer: Any = None,
    items: Any = None,
    default_payment_method: Any = None,
    payment_behavior: Any = None,
    payment_settings: Any = None,
    collection_method: Any = None,
    off_session: Any = None,
    description: Any = None,
    **kwargs: Any,
) -> None:
    if items is not None:
        items = _items_with_plans(items)
    behavior = enum(payment_behavior or "allow_incomplete", "payment_behavior", _PAYMENT_BEHAVIORS)
    if behavior == "pending_if_incomplete":
        unsupported("payment_behavior=pending_if_incomplete", "payment_behavior")
    if collection_method not in (None, "charge_automatically"):
        unsupported("collection_method=send_invoice", "collection_method")
    if off_session is not None:
        as_bool(off_session, "off_session")
    settings = {"payment_method_options": None, "payment_method_types": None,
                "save_default_payment_method": "off"}
    if payment_settings is not None:
        given = dict(as_dict(payment_settings, "payment_settings"))
        if "save_default_payment_method" in given:
            settings["save_default_payment_method"] = enum(
                given.pop("save_default_payment_method"),
                "payment_settings[save_default_payment_method]", ("off", "on_subscription"))
        if "payment_method_types" in given:
            settings["payment_method_types"] = as_list(given.pop("payment_method_types"),
                                                       "payment_settings[payment_method_types]")
        unknown(given, "payment_settings")
    if default_payment_method is not None and isinstance(customer, str):
        Customer._api_retrieve(customer)
        default_payment_method = _attached_payment_method(default_payment_method, customer,
                                                          "default_payment_method")
    # Set before localstripe's constructor, which pays the first invoice (with them).
    self.default_payment_method = default_payment_method
    self.description = opt_str(description, "description")
    self.collection_method = "charge_automatically"
    self.payment_settings = settings
    self.cancellation_details = dict(_NO_CANCELLATION)
    self._ext_defer_payment = behavior == "default_incomplete"
    self._ext_emit_updates = False  # The created event says it all.
    _original_subscription_init(
        self, customer=customer, items=items,
        payment_behavior="allow_incomplete" if behavior == "default_incomplete" else behavior,
        **kwargs)
    self._ext_emit_updates = True


def _create_invoice(self: Subscription) -> None:
    """``default_incomplete``: finalize the first invoice with a PaymentIntent to confirm
    later (``latest_invoice.payment_intent.client_secret``), instead of paying it now."""
    if not getattr(self, "_ext_defer_payment", False):
        _original_create_invoice(self)
        return
    self._ext_defer_payment = False
    pending = [ii for ii in InvoiceItem._api_list_all(None, customer=self.customer, limit=99)._list
               if ii.invoice is None]
    invoice = Invoice(customer=self.customer, subscription=self.id,
                      items=[*pending, *self.items._list], tax_percent=self.tax_percent,
                      default_tax_rates=[tr.id for tr in self.default_tax_rates or []] or None,
                      date=self.current_period_start)
    invoice._finalize()
    if invoice.total <= 0:
        invoice._on_payment_success()
        return
    pi = PaymentIntent(amount=invoice.total, currency=invoice.currency, customer=self.customer,
                       payment_method=_payment_method_for(invoice))
    pi.invoice = invoice.id
    invoice.payment_intent = pi.id


def _emitting(self: Subscription) -> dict[str, Any] | None:
    return self._export() if getattr(self, "_ext_emit_updates", False) else None


def _on_initial_payment_success(self: Subscription, invoice: Invoice) -> None:
    before = _emitting(self)
    _original_initial_success(self, invoice)
    if self.payment_settings.get("save_default_payment_method") == "on_subscription" and \
            invoice.payment_intent:
        self.default_payment_method = PaymentIntent._api_retrieve(invoice.payment_intent).payment_method
    if before is not None:
        emit_updated("customer.subscription.updated", self, before)


def _on_initial_payment_failure_later(self: Subscription, invoice: Invoice) -> None:
    """A failed 3-D Secure step on the first payment: Stripe keeps the subscription
    ``incomplete`` (for 23 hours, then ``incomplete_expired``); localstripe deletes it."""
    pi = PaymentIntent._api_retrieve(invoice.payment_intent) if invoice.payment_intent else None
    if pi is not None and pi._authentication_failed:
        emit("payment_intent.payment_failed", pi)
        return
    _original_initial_failure_later(self, invoice)


def _on_recurring_payment_failure(self: Subscription, invoice: Invoice) -> Any:
    before = _emitting(self)
    result = _original_recurring_failure(self, invoice)
    if before is not None and self.status != "canceled":
        emit_updated("customer.subscription.updated", self, before)
    return result


_UPDATE_PARAMS = ("metadata", "items", "trial_end", "default_tax_rates", "tax_percent", "plan",
                  "quantity", "prorate", "proration_date")


def _update_subscription(
    cls: type[Subscription],
    id: str,
    cancel_at_period_end: Any = None,
    cancel_at: Any = None,
    payment_behavior: Any = None,
    proration_behavior: Any = None,
    default_payment_method: Any = None,
    cancellation_details: Any = None,
    description: Any = None,
    off_session: Any = None,
    **data: Any,
) -> Subscription:
    sub: Subscription = retrieve(Subscription, id, "subscription")
    unknown({k: v for k, v in data.items() if k not in _UPDATE_PARAMS})
    if sub.status in ("canceled", "incomplete_expired") and (
            set(data) - {"metadata"} or any(v is not None for v in (
                cancel_at_period_end, cancel_at, default_payment_method, description))):
        fail("A canceled subscription can only update its cancellation_details and metadata.")
    if payment_behavior is not None:
        enum(payment_behavior, "payment_behavior", _PAYMENT_BEHAVIORS)
    if proration_behavior is not None:
        enum(proration_behavior, "proration_behavior",
             ("always_invoice", "create_prorations", "none"))
    if off_session is not None:
        as_bool(off_session, "off_session")
    at_period_end = as_bool(cancel_at_period_end, "cancel_at_period_end") \
        if cancel_at_period_end is not None else None
    if cancel_at not in (None, ""):
        cancel_at = as_int(cancel_at, "cancel_at", minimum=1)
    if default_payment_method not in (None, ""):
        default_payment_method = _attached_payment_method(default_payment_method, sub.customer,
                                                          "default_payment_method")
    details = as_dict(cancellation_details, "cancellation_details") \
        if cancellation_details is not None else {}
    unknown({k: v for k, v in details.items() if k not in ("comment", "feedback")},
            "cancellation_details")
    if "items" in data:
        data["items"] = _items_with_plans(data["items"])
    new_metadata = merge_metadata(sub.metadata, data.pop("metadata", None))

    before = sub._export()
    sub._ext_emit_updates = False  # One event for the whole update.
    try:
        if data:
            _original_subscription_update(sub, **data)
    finally:
        sub._ext_emit_updates = True
    sub.metadata = new_metadata
    if at_period_end is True:
        sub.cancel_at_period_end = True
        sub.cancel_at = sub.current_period_end
        sub.canceled_at = sub.canceled_at or now()
        sub.cancellation_details = {**sub.cancellation_details, "reason": "cancellation_requested"}
    elif at_period_end is False or cancel_at == "":
        sub.cancel_at_period_end = False
        sub.cancel_at = None
        sub.canceled_at = None
        sub.cancellation_details = dict(_NO_CANCELLATION)
    if isinstance(cancel_at, int):
        sub.cancel_at = cancel_at
        sub.cancel_at_period_end = False
        sub.canceled_at = sub.canceled_at or now()
        sub.cancellation_details = {**sub.cancellation_details, "reason": "cancellation_requested"}
    if default_payment_method is not None:
        sub.default_payment_method = default_payment_method or None
    if description is not None:
        sub.description = opt_str(description, "description")
    for key in ("comment", "feedback"):
        if key in details:
            sub.cancellation_details = {**sub.cancellation_details, key: opt_str(details[key], key)}
    emit_updated("customer.subscription.updated", sub, before)
    return sub


def _delete_subscription(cls: type[Subscription], id: str) -> Subscription:
    sub: Subscription = retrieve(Subscription, id, "subscription")
    if sub.status != "canceled":
        sub.canceled_at = now()
        sub.cancellation_details = {**sub.cancellation_details, "reason": "cancellation_requested"}
    return _original_subscription_delete(cls, id)  # Sets status, ended_at; emits deleted.


def _billing_cycle_anchor(self: Subscription) -> int:
    return getattr(self, "_billing_cycle_anchor", None) or self.start_date


def _set_billing_cycle_anchor(self: Subscription, value: int | None) -> None:
    self._billing_cycle_anchor = value


# --- Invoices -----------------------------------------------------------------------------

_original_invoice_status = Invoice.status
_original_finalize = Invoice._finalize
_original_line_init = InvoiceLineItem.__init__
_original_customer_update = Customer.__dict__["_api_update"].__func__


def _invoice_status(self: Invoice) -> str:
    status = _original_invoice_status.fget(self)
    if status == "open" and getattr(self, "_ext_paid", False):
        return "paid"  # Paid by the renewal simulator or out of band, without a charge.
    return status


def _billing_reason(self: Invoice) -> str:
    """Stripe's ``billing_reason``: ``subscription_create`` for a subscription's first
    invoice, ``subscription_update`` for a later one localstripe makes (a plan change),
    ``subscription_cycle`` when set by the renewal simulator, ``manual`` without a
    subscription."""
    reason = getattr(self, "_ext_billing_reason", None)
    if reason:
        return str(reason)
    if self.subscription is None:
        return "manual"
    first = next((i for key, i in store.items()
                  if key.startswith("invoice:") and i.subscription == self.subscription), self)
    return "subscription_create" if first is self else "subscription_update"


def _set_billing_reason(self: Invoice, value: str | None) -> None:
    self._ext_billing_reason = value


def _finalize(self: Invoice) -> None:
    _original_finalize(self)
    prefix = number_prefix(self.customer)
    count = sum(1 for i in newest_first(Invoice)
                if i.customer == self.customer and getattr(i, "_ext_number", None))
    self._ext_number = f"{prefix}-{count + 1:04d}"
    emit("invoice.finalized", self)


def _line_init(self: InvoiceLineItem, item: Any) -> None:
    _original_line_init(self, item)
    if self.type == "subscription" and self.plan is not None:
        self.description = _line_description(self.plan, self.quantity)


def _line_description(plan: Plan, quantity: int) -> str:
    price = price_text(plan.amount, plan.currency, price_shape(plan)["recurring"])
    return f"{quantity} \u00d7 {product_name(plan.product)} (at {price})"


def _line_price(self: InvoiceLineItem) -> dict[str, Any] | None:
    return price_shape(self.plan) if self.plan is not None else None


def _payment_method_for(invoice: Invoice, payment_method: str | None = None) -> str | None:
    """Stripe's order: the one given, the subscription's default, the customer's default."""
    if payment_method:
        return payment_method
    if invoice.subscription:
        sub = Subscription._api_retrieve(invoice.subscription)
        if getattr(sub, "default_payment_method", None):
            return sub.default_payment_method
    source = Customer._api_retrieve(invoice.customer)._get_default_payment_method_or_source()
    return source.id if source is not None else None


def _pay(invoice: Invoice, payment_method: str | None = None, raise_on_decline: bool = False) -> Invoice:
    """localstripe's pay, using the subscription's default payment method first and
    reporting a failed charge (``invoice.payment_failed``) instead of ignoring it."""
    if invoice.status == "paid":
        fail("Invoice is already paid", code="invoice_already_paid")
    if invoice.status not in ("draft", "open"):
        fail(f"You can only pay an open invoice; this one is {invoice.status}.")
    if invoice.status == "draft":
        invoice._finalize()
    if invoice.total <= 0:
        invoice._on_payment_success()
        return invoice
    pm = _payment_method_for(invoice, payment_method)
    if pm is None:
        fail("This customer has no attached payment source or default payment method. "
             "Please consider adding a default payment method.", code="resource_missing")
    pi = PaymentIntent._api_retrieve(invoice.payment_intent) if invoice.payment_intent else None
    if pi is None or pi.status not in ("requires_payment_method", "requires_confirmation"):
        pi = PaymentIntent(amount=invoice.total, currency=invoice.currency,
                           customer=invoice.customer, payment_method=pm)
        pi.invoice = invoice.id
        invoice.payment_intent = pi.id
    pi.payment_method = pm
    pi.latest_charge = None
    failed: list[bool] = []
    pi._confirm(on_failure_now=lambda: failed.append(True))
    if failed:
        emit("payment_intent.payment_failed", pi)
        emit("invoice.payment_failed", invoice)
        if raise_on_decline:
            pi.latest_charge._raise_failure()
    return invoice


def _api_pay_invoice(cls: type[Invoice], id: str) -> Invoice:
    return _pay(retrieve(Invoice, id, "invoice"))


def void_invoice(id: str, **extra: Any) -> Invoice:
    """``POST /v1/invoices/{id}/void``: an open invoice becomes ``void``, its PaymentIntent
    is canceled (nothing can pay it any more) and ``invoice.voided`` is emitted. Voiding the
    latest invoice of an ``incomplete`` subscription expires it (``incomplete_expired``).
    localstripe's own answers 400 for an invoice without a PaymentIntent, emits nothing,
    and expires a subscription that was already canceled."""
    unknown(extra)
    invoice: Invoice = retrieve(Invoice, id, "invoice")
    if invoice.status != "open":
        fail(f"You can only void an open invoice; this one is {invoice.status}.",
             code="invoice_not_editable")
    if invoice.payment_intent:
        pi = PaymentIntent._api_retrieve(invoice.payment_intent)
        if pi.status not in ("succeeded", "canceled", "processing"):
            PaymentIntent._api_cancel(pi.id)
    invoice._voided = True
    invoice.status_transitions["voided_at"] = now()
    emit("invoice.voided", invoice)
    sub = store.get(f"subscription:{invoice.subscription}") if invoice.subscription else None
    if sub is not None and sub.status == "incomplete" and sub.latest_invoice == invoice.id:
        before = sub._export()
        sub.status = "incomplete_expired"
        emit_updated("customer.subscription.updated", sub, before)
    return invoice


def pay_invoice(
    id: str,
    payment_method: Any = None,
    paid_out_of_band: Any = None,
    off_session: Any = None,
    **extra: Any,
) -> Invoice:
    """``POST /v1/invoices/{id}/pay``."""
    unknown(extra)
    invoice: Invoice = retrieve(Invoice, id, "invoice")
    if off_session is not None:
        as_bool(off_session, "off_session")
    if paid_out_of_band is not None and as_bool(paid_out_of_band, "paid_out_of_band"):
        if invoice.status not in ("draft", "open"):
            fail(f"You can only pay an open invoice; this one is {invoice.status}.")
        if invoice.status == "draft":
            invoice._finalize()
        invoice._ext_paid = True
        invoice._on_payment_success()
        return invoice
    pm = None
    if payment_method is not None:
        pm = PaymentMethod._api_retrieve(as_str(payment_method, "payment_method")).id
    return _pay(invoice, pm, raise_on_decline=True)


def _schedule_webhook(event: Event) -> None:
    """Stripe sends ``invoice.paid`` with every ``invoice.payment_succeeded``."""
    _original_schedule_webhook(event)
    if event.type == "invoice.payment_succeeded":
        _original_schedule_webhook(Event("invoice.paid", _Shape(event.data["object"])))


_original_schedule_webhook = resources.schedule_webhook


# --- Customers ----------------------------------------------------------------------------


def _update_customer(cls: type[Customer], id: str, **data: Any) -> Customer:
    """``invoice_settings[default_payment_method]`` must be attached to the customer, as on
    Stripe; the other invoice settings are kept (Stripe merges the hash)."""
    customer: Customer = retrieve(Customer, id, "customer")
    if "invoice_settings" in data:
        settings = dict(as_dict(data["invoice_settings"], "invoice_settings"))
        pm = settings.get("default_payment_method")
        if pm not in (None, ""):
            settings["default_payment_method"] = _attached_payment_method(
                pm, id, "invoice_settings[default_payment_method]")
        data["invoice_settings"] = {**customer.invoice_settings, **settings}
    return _original_customer_update(cls, id, **data)


# --- The renewal simulator (test-only) ----------------------------------------------------


def renew_subscription(id: str, outcome: Any = None, **extra: Any) -> Invoice | Subscription:
    """``POST /_ext/subscriptions/{id}/renew`` ``{"outcome": "paid" | "failed"}``.

    What Stripe does when a period ends, now. For a live subscription (active, trialing,
    past_due): the next period starts, its invoice is created and finalized, then marked
    paid (``outcome=paid``: ``invoice.paid`` + ``invoice.payment_succeeded``, status
    ``active``) or left open (``outcome=failed``: ``invoice.payment_failed``, status
    ``past_due``), and ``customer.subscription.updated`` follows. Answers the invoice. No
    card is charged: the outcome is the one asked for.

    A subscription set to cancel at (or before) the period end ends instead: status
    ``canceled``, ``customer.subscription.deleted``; answers the subscription.
    """
    unknown(extra)
    sub: Subscription = retrieve(Subscription, id, "subscription")
    if outcome not in ("paid", "failed"):
        fail('outcome must be "paid" or "failed".', "outcome")
    if sub.status not in LIVE_STATUSES:
        fail(f"Only active, trialing or past_due subscriptions renew; this one is {sub.status}.")
    before = sub._export()
    if sub.cancel_at is not None and sub.cancel_at <= sub.current_period_end:
        sub.status = "canceled"
        sub.ended_at = sub.cancel_at
        sub.canceled_at = sub.canceled_at or now()
        emit("customer.subscription.deleted", sub)
        return sub

    sub._ext_periods = getattr(sub, "_ext_periods", 0) + 1
    invoice = Invoice(customer=sub.customer, subscription=sub.id, items=list(sub.items._list),
                      tax_percent=sub.tax_percent,
                      default_tax_rates=[tr.id for tr in sub.default_tax_rates or []] or None,
                      date=sub.current_period_start)
    invoice.billing_reason = "subscription_cycle"
    invoice._finalize()
    if outcome == "paid" or invoice.total <= 0:
        invoice._ext_paid = True
        invoice.status_transitions["paid_at"] = now()
        sub.status = "active"
        emit("invoice.payment_succeeded", invoice)  # and invoice.paid
    else:
        invoice.attempt_count = 1
        invoice.attempted = True
        sub.status = "past_due"
        emit("invoice.payment_failed", invoice)
    emit_updated("customer.subscription.updated", sub, before)
    return invoice


# --- Installation -------------------------------------------------------------------------


def install() -> None:
    resources.schedule_webhook = _schedule_webhook
    SubscriptionItem._current_period = _current_period
    SubscriptionItem.price = property(lambda self: price_shape(self.plan))
    SubscriptionItem.subscription = property(lambda self: self._subscription)
    SubscriptionItem.current_period_start = property(lambda self: self._current_period()["start"])
    SubscriptionItem.current_period_end = property(lambda self: self._current_period()["end"])
    Subscription.__init__ = _subscription_init
    Subscription._create_invoice = _create_invoice
    Subscription._on_initial_payment_success = _on_initial_payment_success
    Subscription._on_recurring_payment_failure = _on_recurring_payment_failure
    Subscription._on_initial_payment_failure_later = _on_initial_payment_failure_later
    Subscription._api_update = classmethod(_update_subscription)
    Subscription._api_delete = classmethod(_delete_subscription)
    Subscription.currency = property(lambda self: self.items._list[0].plan.currency)
    Subscription.billing_cycle_anchor = property(_billing_cycle_anchor, _set_billing_cycle_anchor)
    Invoice.status = property(_invoice_status)
    Invoice.billing_reason = property(_billing_reason, _set_billing_reason)
    Invoice.number = property(lambda self: getattr(self, "_ext_number", None))
    Invoice._finalize = _finalize
    Invoice._api_pay_invoice = classmethod(_api_pay_invoice)
    InvoiceLineItem.__init__ = _line_init
    InvoiceLineItem.price = property(_line_price)
    Customer._api_update = classmethod(_update_customer)


ROUTES = [
    ("POST", "/v1/prices", create_price),
    ("GET", "/v1/prices", list_prices),
    ("GET", "/v1/prices/{id}", retrieve_price),
    ("POST", "/v1/prices/{id}", update_price),
    ("POST", "/v1/invoices/{id}/pay", pay_invoice),
    ("POST", "/v1/invoices/{id}/void", void_invoice),
    ("POST", "/_ext/subscriptions/{id}/renew", renew_subscription),
]
