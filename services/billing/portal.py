"""Stripe Customer Portal: sessions for customers, configurations for staff.

Stripe needs a portal configuration before it opens a session. Tally uses the default
one staff chose, and creates a sensible default on first use when there is none.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from services.billing.gateway import gateway, read
from services.billing.urls import check_url
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
    cached = current_app.extensions.get("tally_portal_configuration")
    if cached:
        return cached
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
    current_app.extensions.pop("tally_portal_configuration", None)


def _bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{param} must be true or false.", param=param)
    return value


def clean_features(raw: object) -> dict[str, Any]:
    """Check a `features` object (Stripe's shape) and keep only what Tally supports."""
    if not isinstance(raw, dict):
        raise InvalidInput("features must be an object.", param="features")
    features: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"features.{name}"
        if not isinstance(value, dict):
            raise InvalidInput(f"{where} must be an object.", param=where)
        enabled = _bool(value.get("enabled"), f"{where}.enabled")
        if name in ("invoice_history", "payment_method_update"):
            features[name] = {"enabled": enabled}
        elif name == "customer_update":
            updates = value.get("allowed_updates", [])
            if not isinstance(updates, list) or any(u not in CUSTOMER_UPDATES for u in updates):
                raise InvalidInput(f"allowed_updates takes {', '.join(CUSTOMER_UPDATES)}.",
                                   param=f"{where}.allowed_updates")
            features[name] = {"enabled": enabled, "allowed_updates": updates}
        elif name == "subscription_cancel":
            mode = value.get("mode", "at_period_end")
            if mode not in CANCEL_MODES:
                raise InvalidInput("mode must be at_period_end or immediately.", param=f"{where}.mode")
            features[name] = {"enabled": enabled, "mode": mode}
        elif name == "subscription_update":
            proration = value.get("proration_behavior", "none")
            if proration not in PRORATIONS:
                raise InvalidInput(f"proration_behavior takes {', '.join(PRORATIONS)}.",
                                   param=f"{where}.proration_behavior")
            features[name] = {"enabled": enabled, "proration_behavior": proration,
                              "default_allowed_updates": ["price"] if enabled else []}
        else:
            raise InvalidInput(f"Unknown feature {name!r}.", param=where)
    return features


def _params(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if "features" in body or creating:
        params["features"] = clean_features(body.get("features", DEFAULT_FEATURES))
        if creating and not params["features"]:  # Stripe needs one; an empty object sends none
            raise InvalidInput("features needs at least one feature, such as "
                               "{\"invoice_history\": {\"enabled\": true}}.", param="features")
    if "headline" in body:
        headline = body["headline"]
        if not isinstance(headline, str) or len(headline) > 60:
            raise InvalidInput("headline must be a string of at most 60 characters.", param="headline")
        params["business_profile"] = {"headline": headline}
    if "default_return_url" in body:
        url = body["default_return_url"]
        if url is not None:
            check_url(url, "default_return_url")
        params["default_return_url"] = url or ""
    if "active" in body and not creating:
        params["active"] = _bool(body["active"], "active")
    return params


def list_configurations() -> list[dict[str, Any]]:
    return gateway().list_portal_configurations()


def get_configuration(configuration_id: str) -> dict[str, Any]:
    return gateway().retrieve_portal_configuration(configuration_id)


def create_configuration(body: dict[str, Any]) -> dict[str, Any]:
    created = gateway().create_portal_configuration(_params(body, creating=True))
    forget_default()
    return created


def update_configuration(configuration_id: str, body: dict[str, Any]) -> dict[str, Any]:
    updated = gateway().update_portal_configuration(configuration_id, _params(body, creating=False))
    forget_default()
    return updated
