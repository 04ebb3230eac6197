"""Staff pages for billing set-up: Stripe Customer Portal configurations."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from services import uow
from services.billing import portal
from services.errors import TallyError
from views.api.declare import validated
from views.api.schemas.portal import PortalConfigurationRequest
from views.htmx import render_page
from views.staff.base import staff_page

bp = Blueprint("staff_billing", __name__, url_prefix="/staff/billing-portal")


def _page(error: str | None = None, status: int = 200):
    return render_page("staff/portal.html", configurations=portal.list_configurations(),
                       modes=portal.CANCEL_MODES, prorations=portal.PRORATIONS, error=error,
                       status=status)


@bp.get("/")
@staff_page
def index():
    return _page()


def _features_from_form() -> dict:
    form = request.form
    return {
        "invoice_history": {"enabled": "invoice_history" in form},
        "payment_method_update": {"enabled": "payment_method_update" in form},
        "customer_update": {"enabled": "customer_update" in form,
                            "allowed_updates": ["email", "address"]},
        "subscription_cancel": {"enabled": "subscription_cancel" in form,
                                "mode": form.get("cancel_mode", "at_period_end")},
        "subscription_update": {"enabled": "subscription_update" in form,
                                "proration_behavior": form.get("proration", "none")},
    }


@bp.post("/")
@staff_page
def create():
    try:
        body = {"features": _features_from_form()}
        if request.form.get("headline"):
            body["headline"] = request.form["headline"]
        created = portal.create_configuration(validated(PortalConfigurationRequest, body).changes())
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        return _page(exc.message, 400)
    flash(f"Portal configuration {created['id']} created.")
    return redirect(url_for("staff_billing.index"), code=303)


@bp.post("/<configuration_id>")
@staff_page
def update(configuration_id: str):
    try:
        changes = validated(PortalConfigurationRequest, {"features": _features_from_form(),
                                                         "active": "active" in request.form})
        portal.update_configuration(configuration_id, changes.changes())
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        return _page(exc.message, 400)
    flash(f"Portal configuration {configuration_id} saved.")
    return redirect(url_for("staff_billing.index"), code=303)
