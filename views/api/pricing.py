"""Price plans (usage-based pricing): staff create and assign them; accounts read theirs."""

from __future__ import annotations

from flask import jsonify

from models import PricePlan
from models.keys import KIND_STAFF
from services.errors import InvalidInput
from services.identity import accounts
from services.pagination import paginate_list
from services.usage import meters as meter_defs
from services.usage import rating
from views.api import (
    ACCOUNT_KEY,
    STAFF_KEY,
    account,
    bp,
    current_key,
    json_body,
    key_required,
    staff_actor,
)
from views.api.lists import list_response, page_args


def price_plan_json(plan: PricePlan) -> dict:
    meters = {m.id: m.name for m in meter_defs.all_meters()}
    charges = []
    for c in plan.charges:
        charge = {"meter": meters.get(c.meter_id), "model": c.model, "included_units": c.included_units}
        if c.model == "per_unit":
            charge["unit_amount"] = c.unit_amount
        elif c.model == "package":
            charge.update(package_size=c.package_size, package_amount=c.package_amount)
        else:
            charge["tiers"] = c.tiers
        charges.append(charge)
    return {"id": plan.id, "object": "price_plan", "name": plan.name, "currency": plan.currency,
            "charges": charges, "created_at": plan.created_at.isoformat()}


@bp.get("/price-plans")
@key_required(*ACCOUNT_KEY, *STAFF_KEY)
def list_price_plans():
    """Staff see every price plan; an account sees the one it is on."""
    if current_key().kind == KIND_STAFF:
        page = rating.list_price_plans(**page_args())
    else:
        mine = [rating.get_price_plan(account().price_plan_id)] if account().price_plan_id else []
        page = paginate_list(mine, lambda p: p.id, **page_args())
    return list_response(page, price_plan_json)


@bp.post("/price-plans")
@key_required(*STAFF_KEY)
def create_price_plan():
    return jsonify(price_plan_json(rating.create_price_plan(staff_actor(), json_body()))), 201


@bp.post("/accounts/<account_id>/price-plan")
@key_required(*STAFF_KEY)
def assign_price_plan(account_id: str):
    """`{price_plan_id, reason?}`; the reason goes into the audit log. `price_plan_id` is
    required: `null` takes the plan off, a missing one is refused (never a silent removal)."""
    body = json_body()
    if "price_plan_id" not in body:
        raise InvalidInput("price_plan_id is required: a price plan id, or null to take the "
                           "price plan off.", param="price_plan_id")
    plan_id = body["price_plan_id"]
    if plan_id is not None and not isinstance(plan_id, str):
        raise InvalidInput("price_plan_id must be a price plan id or null.", param="price_plan_id")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise InvalidInput("reason must be a string of at most 500 characters.", param="reason")
    acct = rating.assign(staff_actor(), accounts.get_account(account_id), plan_id, reason.strip())
    return jsonify(account_id=acct.id, price_plan_id=acct.price_plan_id)
