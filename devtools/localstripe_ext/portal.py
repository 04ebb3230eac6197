"""Customer Portal: configurations, sessions, and the hosted portal page.

API (secret key):

* ``POST /v1/billing_portal/configurations``: ``features`` (required), ``business_profile``,
  ``default_return_url``, ``login_page[enabled]``, ``metadata``, ``name``. Every feature
  not given gets Stripe's defaults (all disabled), so ``features`` always has
  ``customer_update``, ``invoice_history``, ``payment_method_update``,
  ``subscription_cancel``, ``subscription_pause`` and ``subscription_update`` in full.
  Stripe's own default configuration is the one saved in the Dashboard; there is no
  Dashboard here, so the first configuration created becomes the default
  (``is_default: true``). ``is_default`` is not a parameter (as on Stripe).
* ``GET /v1/billing_portal/configurations`` (``active``, ``is_default``, ``limit``,
  ``starting_after``; newest first), ``GET /v1/billing_portal/configurations/{id}``,
  ``POST /v1/billing_portal/configurations/{id}`` (same fields plus ``active``; features
  are merged field by field; the default configuration cannot be deactivated).
* ``POST /v1/billing_portal/sessions``: ``customer`` (required, must exist),
  ``return_url`` (or the configuration's ``default_return_url``), ``configuration``
  (default: the default configuration; with none yet, Stripe's error), ``locale``.

Hosted page (no key: under ``/js.stripe.com/``, exempt from localstripe's auth check; the
random token in the URL is the credential, as in Stripe's
``billing.stripe.com/p/session/test_...``): ``GET
/js.stripe.com/tally/billing_portal/session/{token}`` shows the customer's subscriptions and,
per the configuration, a "Cancel plan" button (``subscription_cancel``: at period end, or
immediately with mode ``immediately``), a "Renew plan" button for a plan set to cancel, the
invoice history, the card on file, and a "Return" link to ``return_url``. The buttons go
through the same code as the API, so they emit ``customer.subscription.updated`` /
``customer.subscription.deleted``.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import (
    Customer,
    Invoice,
    List,
    PaymentMethod,
    Product,
    StripeObject,
    Subscription,
    random_id,
    store,
)

from .billing import price_shape
from .common import (
    DeepExport,
    as_bool,
    as_dict,
    as_int,
    as_list,
    as_str,
    day,
    emit,
    emit_updated,
    enum,
    enum_list,
    error_box,
    esc,
    fail,
    merge_metadata,
    message_page,
    missing,
    money,
    newest_first,
    no_such,
    now,
    opt_bool,
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

PAGE_PATH = "/js.stripe.com/tally/billing_portal/session/"

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "customer_update": {"allowed_updates": [], "enabled": False},
    "invoice_history": {"enabled": False},
    "payment_method_update": {"enabled": False, "payment_method_configuration": None},
    "subscription_cancel": {
        "cancellation_reason": {
            "enabled": False,
            "options": ["too_expensive", "missing_features", "switched_service", "unused", "other"],
        },
        "enabled": False,
        "mode": "at_period_end",
        "proration_behavior": "none",
    },
    "subscription_pause": {"enabled": False},
    "subscription_update": {
        "billing_cycle_anchor": None,
        "default_allowed_updates": [],
        "enabled": False,
        "products": [],
        "proration_behavior": "none",
        "schedule_at_period_end": {"conditions": []},
        "trial_update_behavior": "end_trial",
    },
}

_CANCEL_REASONS = ("customer_service", "low_quality", "missing_features", "other",
                   "switched_service", "too_complex", "too_expensive", "unused")
_CUSTOMER_UPDATES = ("address", "email", "name", "phone", "shipping", "tax_id")
_NO_DEFAULT = (
    "No configuration provided and your test mode default configuration has not been "
    "created. Provide a configuration or create your default by saving your customer "
    "portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
)


# --- Parameter parsing ------------------------------------------------------------------


def _products(value: Any, param: str) -> list[dict[str, Any]]:
    result = []
    for i, entry in enumerate(as_list(value, param)):
        entry = dict(as_dict(entry, f"{param}[{i}]"))
        product = entry.pop("product", None)
        if product is None:
            missing(f"{param}[{i}][product]")
        retrieve(Product, product, "product", f"{param}[{i}][product]")
        prices = [as_str(p, f"{param}[{i}][prices]") for p in
                  as_list(entry.pop("prices", None) or [], f"{param}[{i}][prices]")]
        if not prices:
            missing(f"{param}[{i}][prices]")
        for j, price_id in enumerate(prices):
            price = store.get("price:" + price_id) or store.get("plan:" + price_id)
            if price is None:
                no_such("price", price_id, f"{param}[{i}][prices][{j}]")
            if price.product != product:
                fail(f"The price {price_id} does not belong to product {product}.",
                     f"{param}[{i}][prices][{j}]")
        quantity = {"enabled": False, "maximum": None, "minimum": 1}
        if "adjustable_quantity" in entry:
            given = dict(as_dict(entry.pop("adjustable_quantity"), f"{param}[{i}][adjustable_quantity]"))
            quantity["enabled"] = as_bool(given.pop("enabled", False),
                                          f"{param}[{i}][adjustable_quantity][enabled]")
            if "maximum" in given:
                quantity["maximum"] = as_int(given.pop("maximum"), "maximum", minimum=1)
            if "minimum" in given:
                quantity["minimum"] = as_int(given.pop("minimum"), "minimum", minimum=0)
            unknown(given, f"{param}[{i}][adjustable_quantity]")
        unknown(entry, f"{param}[{i}]")
        result.append({"adjustable_quantity": quantity, "prices": prices, "product": product})
    return result


def _cancellation_reason(value: Any, param: str, current: dict[str, Any]) -> dict[str, Any]:
    given = dict(as_dict(value, param))
    result = dict(current)
    if "enabled" in given:
        result["enabled"] = as_bool(given.pop("enabled"), f"{param}[enabled]")
    if "options" in given:
        result["options"] = enum_list(given.pop("options"), f"{param}[options]", _CANCEL_REASONS)
    unknown(given, param)
    return result


def _conditions(value: Any, param: str, current: dict[str, Any]) -> dict[str, Any]:
    given = dict(as_dict(value, param))
    conditions = []
    for i, condition in enumerate(as_list(given.pop("conditions", None) or [], f"{param}[conditions]")):
        condition = as_dict(condition, f"{param}[conditions][{i}]")
        conditions.append({"type": enum(condition.get("type"), f"{param}[conditions][{i}][type]",
                                        ("decreasing_item_amount", "shortening_interval"))})
    unknown(given, param)
    return {"conditions": conditions}


def _feature_fields(name: str) -> dict[str, Any]:
    """Per feature: field -> parser(value, param, current value)."""
    simple = {"enabled": lambda v, p, c: as_bool(v, p)}
    return {
        "customer_update": {
            **simple,
            "allowed_updates": lambda v, p, c: enum_list(v, p, _CUSTOMER_UPDATES),
        },
        "invoice_history": simple,
        "payment_method_update": {
            **simple,
            "payment_method_configuration": lambda v, p, c: opt_str(v, p),
        },
        "subscription_cancel": {
            **simple,
            "mode": lambda v, p, c: enum(v, p, ("at_period_end", "immediately")),
            "proration_behavior": lambda v, p, c: enum(v, p, ("create_prorations", "none")),
            "cancellation_reason": _cancellation_reason,
        },
        "subscription_pause": simple,
        "subscription_update": {
            **simple,
            "default_allowed_updates": lambda v, p, c: enum_list(
                v, p, ("price", "promotion_code", "quantity")),
            "proration_behavior": lambda v, p, c: enum(
                v, p, ("always_invoice", "create_prorations", "none")),
            "products": lambda v, p, c: _products(v, p),
            "billing_cycle_anchor": lambda v, p, c: enum(v, p, ("now", "unchanged")),
            "schedule_at_period_end": _conditions,
            "trial_update_behavior": lambda v, p, c: enum(v, p, ("continue_trial", "end_trial")),
        },
    }[name]


def _features(value: Any, current: dict[str, Any], creating: bool) -> dict[str, Any]:
    given = as_dict(value, "features")
    result = copy.deepcopy(current)
    unknown({k: v for k, v in given.items() if k not in DEFAULT_FEATURES}, "features")
    for name, fields in given.items():
        param = f"features[{name}]"
        fields = as_dict(fields, param)
        if creating and "enabled" not in fields and name != "subscription_pause":
            missing(f"{param}[enabled]")
        parsers = _feature_fields(name)
        unknown({k: v for k, v in fields.items() if k not in parsers}, param)
        for field, raw in fields.items():
            result[name][field] = parsers[field](raw, f"{param}[{field}]", result[name][field])
    cancel = result["subscription_cancel"]
    if cancel["proration_behavior"] == "create_prorations" and cancel["mode"] != "immediately":
        fail("`proration_behavior=create_prorations` is only compatible with `mode=immediately`.",
             "features[subscription_cancel][proration_behavior]")
    return result


def _business_profile(value: Any, current: dict[str, Any]) -> dict[str, Any]:
    given = dict(as_dict(value, "business_profile"))
    result = dict(current)
    for field in ("headline", "privacy_policy_url", "terms_of_service_url"):
        if field in given:
            result[field] = opt_str(given.pop(field), f"business_profile[{field}]")
    unknown(given, "business_profile")
    return result


def _login_page(value: Any) -> dict[str, Any]:
    given = dict(as_dict(value, "login_page"))
    enabled = as_bool(given.pop("enabled", False), "login_page[enabled]")
    unknown(given, "login_page")
    if enabled:
        unsupported("the portal login page", "login_page[enabled]")
    return {"enabled": False, "url": None}


# --- Configurations ---------------------------------------------------------------------


class PortalConfiguration(DeepExport, StripeObject):
    object = "billing_portal.configuration"
    _id_prefix = "bpc_"

    def __init__(
        self,
        features: Any = None,
        business_profile: Any = None,
        default_return_url: Any = None,
        login_page: Any = None,
        metadata: Any = None,
        name: Any = None,
        **extra: Any,
    ) -> None:
        unknown(extra)
        if features is None:
            missing("features")
        parsed_features = _features(features, DEFAULT_FEATURES, creating=True)
        profile = _business_profile(business_profile or {}, {
            "headline": None, "privacy_policy_url": None, "terms_of_service_url": None})
        return_url = opt_str(default_return_url, "default_return_url")
        login = _login_page(login_page or {})
        meta = parse_metadata(metadata)
        name = opt_str(name, "name")
        is_default = not newest_first(PortalConfiguration)

        super().__init__(self._id_prefix + random_id(24))
        self.active = True
        self.application = None
        self.business_profile = profile
        self.default_return_url = return_url
        self.features = parsed_features
        self.is_default = is_default
        self.login_page = login
        self.metadata = meta
        self.name = name
        self.updated = self.created
        emit("billing_portal.configuration.created", self)


def create_configuration(**params: Any) -> PortalConfiguration:
    return PortalConfiguration(**params)


def retrieve_configuration(id: str, **extra: Any) -> PortalConfiguration:
    unknown(extra)
    return retrieve(PortalConfiguration, id, "configuration")


def update_configuration(
    id: str,
    active: Any = None,
    business_profile: Any = None,
    default_return_url: Any = None,
    features: Any = None,
    login_page: Any = None,
    metadata: Any = None,
    name: Any = None,
    **extra: Any,
) -> PortalConfiguration:
    unknown(extra)
    config: PortalConfiguration = retrieve(PortalConfiguration, id, "configuration")
    before = config._export()
    new_active = as_bool(active, "active") if active is not None else config.active
    if config.is_default and not new_active:
        fail("You cannot deactivate the default configuration.", "active")
    new_features = _features(features, config.features, creating=False) \
        if features is not None else config.features
    new_profile = _business_profile(business_profile, config.business_profile) \
        if business_profile is not None else config.business_profile
    new_login = _login_page(login_page) if login_page is not None else config.login_page
    new_metadata = merge_metadata(config.metadata, metadata)
    config.active = new_active
    config.features = new_features
    config.business_profile = new_profile
    config.login_page = new_login
    config.metadata = new_metadata
    if default_return_url is not None:
        config.default_return_url = opt_str(default_return_url, "default_return_url")
    if name is not None:
        config.name = opt_str(name, "name")
    config.updated = now()
    emit_updated("billing_portal.configuration.updated", config, before)
    return config


def list_configurations(
    active: Any = None,
    is_default: Any = None,
    limit: Any = None,
    starting_after: Any = None,
    **extra: Any,
) -> List:
    unknown(extra)
    configs = where(newest_first(PortalConfiguration), "active", opt_bool(active, "active"))
    configs = where(configs, "is_default", opt_bool(is_default, "is_default"))
    return page_of("/v1/billing_portal/configurations", configs, limit, starting_after)


# --- Sessions ---------------------------------------------------------------------------


class PortalSession(DeepExport, StripeObject):
    object = "billing_portal.session"
    _id_prefix = "bps_"

    def __init__(
        self,
        customer: Any = None,
        return_url: Any = None,
        configuration: Any = None,
        locale: Any = None,
        flow_data: Any = None,
        on_behalf_of: Any = None,
        **extra: Any,
    ) -> None:
        unknown(extra)
        if customer is None:
            missing("customer")
        retrieve(Customer, customer, "customer", "customer")
        if flow_data is not None:
            unsupported("flow_data (portal deep links)", "flow_data")
        if on_behalf_of is not None:
            unsupported("on_behalf_of", "on_behalf_of")
        if configuration is not None:
            config = retrieve(PortalConfiguration, configuration, "configuration", "configuration")
            if not config.active:
                fail(f"The configuration {config.id} is not active.", "configuration")
        else:
            config = next((c for c in newest_first(PortalConfiguration) if c.is_default), None)
            if config is None:
                fail(_NO_DEFAULT)
        return_url = opt_str(return_url, "return_url") or config.default_return_url
        if return_url is None:
            fail("You must provide a `return_url` or set a `default_return_url` on the "
                 "configuration.", "return_url")
        locale = opt_str(locale, "locale")

        super().__init__(self._id_prefix + random_id(24))
        self.configuration = config.id
        self.customer = customer
        self.flow = None
        self.locale = locale
        self.on_behalf_of = None
        self.return_url = return_url
        self._token = "test_" + random_id(40)
        self.url = public_url(PAGE_PATH + self._token)
        emit("billing_portal.session.created", self)


def create_session(**params: Any) -> PortalSession:
    return PortalSession(**params)


ROUTES = [
    ("POST", "/v1/billing_portal/configurations", create_configuration),
    ("GET", "/v1/billing_portal/configurations", list_configurations),
    ("GET", "/v1/billing_portal/configurations/{id}", retrieve_configuration),
    ("POST", "/v1/billing_portal/configurations/{id}", update_configuration),
    ("POST", "/v1/billing_portal/sessions", create_session),
]


# --- The hosted page ----------------------------------------------------------------------


def _session_by_token(token: str) -> PortalSession | None:
    return next((s for s in newest_first(PortalSession) if s._token == token), None)


def _subscriptions(customer: str) -> list[Subscription]:
    return [s for s in reversed(newest_first(Subscription))
            if s.customer == customer and s.status not in ("canceled", "incomplete_expired")]


def _subscription_form(action: str, sub: Subscription, content: str) -> str:
    """A form that posts one subscription's id to ``action``."""
    return (f'<form method="post" action="{esc(action)}">'
            f'<input type="hidden" name="subscription" value="{esc(sub.id)}">{content}</form>')


def _render(session: PortalSession, error: str | None = None, status: int = 200) -> web.Response:
    config: PortalConfiguration = store["billing_portal.configuration:" + session.configuration]
    features = config.features
    customer: Customer = Customer._api_retrieve(session.customer)
    action = PAGE_PATH + session._token
    parts = [f"<h1>{esc(config.business_profile.get('headline') or 'Manage your billing')}</h1>",
             f'<p class="muted" data-testid="customer">{esc(customer.name or "")} '
             f'{esc(customer.email or "")}</p>', error_box(error), "<h2>Current plan</h2>"]
    subscriptions = _subscriptions(session.customer)
    if not subscriptions:
        parts.append('<p data-testid="no-subscription">No active subscription.</p>')
    cancel = features["subscription_cancel"]
    for sub in subscriptions:
        price = price_shape(sub.plan)
        name = product_name(price["product"])
        amount = price_text(price["unit_amount"] * sub.quantity, price["currency"], price["recurring"])
        if sub.cancel_at:
            when = f"Your plan will be canceled on {day(sub.cancel_at)}."
        else:
            when = f"Renews on {day(sub.current_period_end)}."
        buttons = ""
        if cancel["enabled"] and sub.status in ("active", "trialing", "past_due"):
            if sub.cancel_at:
                buttons = _subscription_form(f"{action}/renew", sub,
                                             '<button type="submit">Renew plan</button>')
            else:
                note = ("Canceling ends your plan now." if cancel["mode"] == "immediately"
                        else "Your plan stays active until the end of the current period.")
                buttons = _subscription_form(f"{action}/cancel", sub,
                                             f'<p class="muted">{note}</p>'
                                             '<button type="submit" class="secondary">Cancel plan</button>')
        parts.append(
            f'<div class="card" data-testid="subscription" data-id="{esc(sub.id)}">'
            f"<strong>{esc(name)}</strong><div>{esc(amount)}</div>"
            f'<div data-testid="status">Status: {esc(sub.status)}</div>'
            f'<div class="muted" data-testid="period">{esc(when)}</div>{buttons}</div>')
    if features["payment_method_update"]["enabled"]:
        source = customer._get_default_payment_method_or_source()
        card = getattr(source, "card", None) if isinstance(source, PaymentMethod) else None
        text = f"{card['brand'].title()} ending in {card['last4']}" if card else "None"
        parts.append(f'<h2>Payment method</h2><p data-testid="payment-method">{esc(text)}</p>')
    if features["invoice_history"]["enabled"]:
        invoices = [i for i in newest_first(Invoice)
                    if i.customer == session.customer and i.status != "draft"]
        rows = "".join(
            f"<tr><td>{esc(day(i.date))}</td><td>{esc(i.number or '')}</td>"
            f"<td>{esc(money(i.total, i.currency))}</td><td>{esc(i.status)}</td></tr>"
            for i in invoices) or '<tr><td colspan="4">No invoices yet.</td></tr>'
        parts.append(f'<h2>Invoice history</h2><table data-testid="invoices">{rows}</table>')
    parts.append(f'<p><a href="{esc(session.return_url)}" data-testid="return">Return</a></p>')
    return page("Billing portal", "\n".join(parts), status)


def _not_valid() -> web.Response:
    return message_page("Billing portal", "This link is not valid.", 404)


async def show_page(request: web.Request) -> web.Response:
    session = _session_by_token(request.match_info["token"])
    if session is None:
        return _not_valid()
    return _render(session)


async def _act(request: web.Request, cancel: bool) -> web.StreamResponse:
    session = _session_by_token(request.match_info["token"])
    if session is None:
        return _not_valid()
    config: PortalConfiguration = store["billing_portal.configuration:" + session.configuration]
    feature = config.features["subscription_cancel"]
    form = await request.post()
    sub = store.get("subscription:" + str(form.get("subscription", "")))
    try:
        if not feature["enabled"]:
            raise UserError(403, "Canceling is not enabled in this portal.")
        if sub is None or sub.customer != session.customer:
            raise UserError(404, "No such subscription.")
        if cancel and feature["mode"] == "immediately":
            Subscription._api_delete(sub.id)
        else:
            Subscription._api_update(sub.id, cancel_at_period_end=cancel)
    except UserError as error:
        return _render(session, user_error_message(error), error.code)
    raise web.HTTPSeeOther(PAGE_PATH + session._token)


async def cancel_plan(request: web.Request) -> web.StreamResponse:
    return await _act(request, cancel=True)


async def renew_plan(request: web.Request) -> web.StreamResponse:
    return await _act(request, cancel=False)


def add_page_routes(app: web.Application) -> None:
    app.router.add_get(PAGE_PATH + "{token}", show_page)
    app.router.add_post(PAGE_PATH + "{token}/cancel", cancel_plan)
    app.router.add_post(PAGE_PATH + "{token}/renew", renew_plan)
