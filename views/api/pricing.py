"""Price plans (usage-based pricing): staff create and assign them; accounts read theirs."""

from __future__ import annotations

from models import PricePlan as PricePlanRow
from models.keys import KIND_STAFF
from services.identity import accounts, members
from services.pagination import paginate_list
from services.usage import meters as meter_defs
from services.usage import rating
from views.api import ACCOUNT_OR_STAFF_KEY, STAFF_KEY, account, bp, current_key, staff_actor
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.pricing import (
    AssignPricePlanRequest,
    CreatePricePlanRequest,
    PriceCharge,
    PricePlan,
    PricePlanAssignment,
    PricePlanList,
    PriceTier,
)

TAG = "Price plans"


def price_plan_answer(plan: PricePlanRow) -> PricePlan:
    meters = {m.id: m.name for m in meter_defs.all_meters()}
    charges = []
    for c in plan.charges:
        charge = PriceCharge(meter=meters.get(c.meter_id), model=c.model, included_units=c.included_units)
        if c.model == "per_unit":
            charge.unit_amount = c.unit_amount
        elif c.model == "package":
            charge.package_size, charge.package_amount = c.package_size, c.package_amount
        else:
            charge.tiers = [PriceTier(**tier) for tier in c.tiers]
        charges.append(charge)
    return PricePlan(id=plan.id, name=plan.name, currency=plan.currency, charges=charges,
                     created_at=plan.created_at)


@bp.get("/price-plans")
@operation(ACCOUNT_OR_STAFF_KEY, TAG, "Price plans (staff: all; an account: its own)", PricePlanList,
           query=PageQuery,
           permission=members.READ)
def list_price_plans(query: PageQuery) -> PricePlanList:
    """Staff see every price plan; an account sees the one it is on."""
    if current_key().kind == KIND_STAFF:
        page = rating.list_price_plans(**query.page())
    else:
        plan_id = account().price_plan_id
        mine = [rating.get_price_plan(plan_id)] if plan_id else []
        page = paginate_list(mine, lambda p: p.id, **query.page())
    return PricePlanList.of(page, price_plan_answer)


@bp.post("/price-plans")
@operation(STAFF_KEY, TAG, "Create a price plan", PricePlan, status=201, body=CreatePricePlanRequest,
           errors=(404,))
def create_price_plan(body: CreatePricePlanRequest) -> tuple[PricePlan, int]:
    plan = rating.create_price_plan(staff_actor(), name=body.name, currency=body.currency,
                                    charges=body.charge_specs())
    return price_plan_answer(plan), 201


@bp.post("/accounts/<account_id>/price-plan")
@operation(STAFF_KEY, TAG, "Put an account on a price plan", PricePlanAssignment,
           body=AssignPricePlanRequest)
def assign_price_plan(account_id: str, body: AssignPricePlanRequest) -> PricePlanAssignment:
    """`price_plan_id` is required: `null` takes the plan off, a missing one is refused (never
    a silent removal); the reason goes into the audit log."""
    acct = rating.assign(staff_actor(), accounts.get_account(account_id), body.price_plan_id,
                         body.reason.strip())
    return PricePlanAssignment(account_id=acct.id, price_plan_id=acct.price_plan_id)
