"""Stripe Customer Portal: sessions for customers, configurations for staff.

Stripe needs a portal configuration before it opens a session. Tally uses the default
one staff chose, and creates a sensible default on first use when there is none.
"""

from __future__ import annotations

from typing import Any, TypedDict

from flask import current_app

from services.billing.gateway import gateway
from services.billing.stripe_objects import read
from services.errors import InvalidInput

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
    /v1/billing-portal/configurations's declaration): Stripe's `features` (those Tally sets,
    with their allowed values), a `headline`, a `default_return_url` (None: none),
    `active` (updates only)."""

    features: dict[str, dict[str, Any]]
    headline: str
    default_return_url: str | None
    active: bool


def _stripe_features(features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """As Stripe wants them: an enabled subscription update says what may change."""
    shaped = {name: dict(value) for name, value in features.items()}
    if "subscription_update" in shaped:
        update = shaped["subscription_update"]
        update["default_allowed_updates"] = ["price"] if update["enabled"] else []
    return shaped


def _params(changes: Changes, *, creating: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if "features" in changes or creating:
        params["features"] = _stripe_features(changes.get("features", DEFAULT_FEATURES))
        if creating and not params["features"]:  # Stripe needs one; an empty object sends none
            raise InvalidInput("features needs at least one feature, such as "
                               "{\"invoice_history\": {\"enabled\": true}}.", param="features")
    if "headline" in changes:
        params["business_profile"] = {"headline": changes["headline"]}
    if "default_return_url" in changes:
        params["default_return_url"] = changes["default_return_url"] or ""
    if "active" in changes and not creating:
        params["active"] = changes["active"]
    return params


def list_configurations() -> list[dict[str, Any]]:
    """Every portal configuration at Stripe."""
    return gateway().list_portal_configurations()


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
