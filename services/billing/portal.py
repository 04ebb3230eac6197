"""Stripe Customer Portal: sessions for customers, configurations for staff.

Stripe needs a portal configuration before it opens a session. Tally uses the default
one staff chose, and creates a sensible default on first use when there is none.
"""

from __future__ import annotations

from typing import Any, TypedDict

from flask import current_app
from sqlalchemy import or_, select

from extensions import db
from models import Customer
from services.billing import customers
from services.billing.gateway import gateway
from services.billing.stripe_objects import read
from services.errors import InvalidInput, NotFound
from services.staff import audit
from services.staff.audit import Actor
from services.staff.rules import require_staff

CANCEL_MODES = ("at_period_end", "immediately")
PRORATIONS = ("none", "create_prorations", "always_invoice")
CUSTOMER_UPDATES = ("email", "address", "phone", "shipping", "tax_id", "name")

DEFAULT_FEATURES: dict[str, Any] = {
    "customer_update": {"enabled": True, "allowed_updates": ["email", "address"]},
    "invoice_history": {"enabled": True},
    "payment_method_update": {"enabled": True},
    "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
}


def default_configuration_id() -> str:
    """The portal configuration sessions open with: the default staff chose, else an active one, else one
    Tally creates (cached per process)."""
    cached = current_app.extensions.get("tally_portal_configuration")
    if cached:
        return str(cached)

    def get(config: dict[str, Any], path: str) -> Any:
        return read(config, "billing_portal.configuration", path)

    configurations = gateway().list_portal_configurations()
    chosen = next((c for c in configurations if get(c, "is_default") and get(c, "active")), None)
    chosen = chosen or next((c for c in configurations if get(c, "active")), None)
    if chosen is None:
        chosen = gateway().create_portal_configuration({
            "features": DEFAULT_FEATURES, "business_profile": {"headline": "Tally billing"}})
    current_app.extensions["tally_portal_configuration"] = str(get(chosen, "id"))
    return str(get(chosen, "id"))


def forget_default() -> None:
    """Choose the default configuration again on next use (one was created or changed)."""
    current_app.extensions.pop("tally_portal_configuration", None)


class Changes(TypedDict, total=False):
    """What to set on a configuration, its shape already checked (POST
    /v1/billing-portal/configurations's declaration), as Stripe spells it: `features`,
    `business_profile` (a None headline clears it), `headline` (Tally's shorthand for
    business_profile.headline), `default_return_url` (None: none), `login_page`,
    `metadata` (a None value removes the key), `name`, `active` (updates only)."""

    features: dict[str, dict[str, Any]]
    business_profile: dict[str, str | None]
    headline: str
    default_return_url: str | None
    login_page: dict[str, bool]
    metadata: dict[str, str | None]
    name: str | None
    active: bool


def _stripe_features(features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """As Stripe wants them: an enabled subscription update says what may change (unless
    the caller said)."""
    shaped = {name: dict(value) for name, value in features.items()}
    if "subscription_update" in shaped:
        update = shaped["subscription_update"]
        update.setdefault("default_allowed_updates", ["price"] if update["enabled"] else [])
    return shaped


def _business_profile(changes: Changes) -> dict[str, str] | None:
    profile = dict(changes.get("business_profile", {}))
    if "headline" in changes:
        profile["headline"] = changes["headline"]
    if "headline" in profile and profile["headline"] is None:
        profile["headline"] = ""  # Stripe's way to clear it
    kept = {k: v for k, v in profile.items() if v is not None}
    return kept or None


def _params(changes: Changes, *, creating: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if "features" in changes or creating:
        params["features"] = _stripe_features(changes.get("features", DEFAULT_FEATURES))
        if creating and not params["features"]:  # Stripe needs one; an empty object sends none
            raise InvalidInput("features needs at least one feature, such as "
                               "{\"invoice_history\": {\"enabled\": true}}.", param="features")
    profile = _business_profile(changes)
    if profile:
        params["business_profile"] = profile
    if "default_return_url" in changes:
        params["default_return_url"] = changes["default_return_url"] or ""
    if "metadata" in changes:
        params["metadata"] = {k: v or "" for k, v in changes["metadata"].items()}
    if "name" in changes:
        params["name"] = changes["name"] or ""
    if "login_page" in changes:
        params["login_page"] = changes["login_page"]
    if "active" in changes and not creating:
        params["active"] = changes["active"]
    return params


def list_configurations(*, active: bool | None = None,
                        is_default: bool | None = None) -> list[dict[str, Any]]:
    """Every portal configuration at Stripe (newest first), or those `active` or not,
    default or not."""
    found = gateway().list_portal_configurations()
    if active is not None:
        found = [c for c in found if c.get("active") is active]
    if is_default is not None:
        found = [c for c in found if c.get("is_default") is is_default]
    return found


def open_session(actor: Actor, customer_ref: str, *, return_url: str | None,
                 configuration: str | None, locale: str | None) -> dict[str, Any]:
    """Stripe's portal session for a Tally customer, named by its Tally id or its Stripe
    id (staff; audited). The customer's Stripe customer is created on first use;
    `configuration` defaults to the one Tally opens sessions with, `return_url` to the
    configuration's."""
    require_staff(actor.staff)
    customer = db.session.execute(select(Customer).where(or_(
        Customer.id == customer_ref, Customer.stripe_customer_id == customer_ref))).scalar_one_or_none()
    if customer is None:
        raise NotFound(f"No such customer: {customer_ref}", param="customer")
    stripe_customer = customers.stripe_id(customer)
    params: dict[str, Any] = {"customer": stripe_customer,
                              "configuration": configuration or default_configuration_id()}
    for name, value in (("return_url", return_url), ("locale", locale)):
        if value is not None:
            params[name] = value
    session = gateway().open_portal_session(params)
    customers.remember(customer, stripe_customer)
    audit.record(actor, "portal.session", customer_id=customer.id,
                 meta={"session": session.get("id"), "configuration": params["configuration"]})
    return session


def get_configuration(configuration_id: str) -> dict[str, Any]:
    """One portal configuration, as Stripe has it."""
    return gateway().retrieve_portal_configuration(configuration_id)


def create_configuration(changes: Changes) -> dict[str, Any]:
    """Create a portal configuration at Stripe."""
    created = gateway().create_portal_configuration(_params(changes, creating=True))
    forget_default()
    return created


def update_configuration(configuration_id: str, changes: Changes) -> dict[str, Any]:
    """Change a portal configuration at Stripe."""
    updated = gateway().update_portal_configuration(configuration_id, _params(changes, creating=False))
    forget_default()
    return updated
