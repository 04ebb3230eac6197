"""Staff page for usage-based pricing: the price plans, and a form to create one.

The same service as `POST /v1/price-plans` (services/usage/rating.py): charges are entered as
the JSON list the API takes, and a fault shows beside the field it names.
"""

from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, request, url_for

from services import uow
from services.errors import InvalidInput, TallyError
from services.usage import meters, rating
from views.api.declare import validated
from views.api.schemas.pricing import CreatePricePlanRequest
from views.htmx import render_page
from views.session import actor
from views.staff.base import staff_page

bp = Blueprint("staff_pricing", __name__, url_prefix="/staff/price-plans")

EXAMPLE_CHARGES = json.dumps([
    {"meter": "apiCalls", "model": "per_unit", "unit_amount": 1, "included_units": 1000},
    {"meter": "llmTokens", "model": "graduated", "tiers": [
        {"up_to": 100000, "unit_amount": 0}, {"up_to": None, "unit_amount": 1}]},
], indent=2)


def _page(values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
          status: int = 200):
    return render_page("staff/price_plans.html", plans=rating.all_price_plans(),
                       meters={m.id: m.name for m in meters.all_meters()},
                       values=values or {"currency": "usd", "charges": EXAMPLE_CHARGES},
                       errors=errors or {},
                       status=status)


@bp.get("/")
@staff_page
def index():
    return _page()


@bp.post("/")
@staff_page
def create():
    values = {k: request.form.get(k, "") for k in ("name", "currency", "charges")}
    try:
        try:
            charges = json.loads(values["charges"] or "null")
        except ValueError as exc:
            raise InvalidInput(f"Charges must be JSON: {exc.msg} (line {exc.lineno}).",
                               param="charges") from None
        body = validated(CreatePricePlanRequest, {"name": values["name"],
                                                  "currency": values["currency"].strip().lower(),
                                                  "charges": charges})
        plan = rating.create_price_plan(actor(), name=body.name, currency=body.currency,
                                        charges=body.charge_specs())
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        field = (exc.param or "").split("[")[0].split(".")[0]
        return _page(values, {field if field in values else "form": exc.message}, status=400)
    flash(f"Price plan {plan.name} ({plan.id}) created. Put accounts on it from their "
          "customer page.")
    return redirect(url_for("staff_pricing.index"), code=303)
