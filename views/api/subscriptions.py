"""Plans, the Pro subscription, Stripe Checkout and the Customer Portal."""

from __future__ import annotations

from datetime import datetime

from flask import Response, jsonify

from models import Subscription
from services.billing import plans, subscriptions
from services.billing.gateway import gateway
from services.errors import InvalidInput
from services.pagination import paginate_list
from views.api import ACCOUNT_KEY, account, bp, json_body, key_required
from views.api.lists import list_response, page_args


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def subscription_json(row: Subscription | None) -> dict:
    if row is None:
        return {"id": None, "plan": "free", "status": "none", "currentPeriodStart": None,
                "currentPeriodEnd": None, "cancelAtPeriodEnd": False, "cancelAt": None}
    return {"id": row.id, "plan": row.plan, "status": row.status,
            "currentPeriodStart": _iso(row.current_period_start),
            "currentPeriodEnd": _iso(row.current_period_end),
            "cancelAtPeriodEnd": row.cancel_at_period_end, "cancelAt": _iso(row.cancel_at)}


@bp.get("/billing/plans")
@key_required(*ACCOUNT_KEY)
def list_plans():
    """The plans in the configuration's order; a cursor is a plan's name."""

    def plan_json(plan: plans.Plan) -> dict:
        price = None
        if plan.price is not None:
            price = {"amount": plan.price.amount, "currency": plan.price.currency,
                     "interval": plan.price.interval,
                     "priceId": subscriptions.price_id(plan) if gateway().configured else None}
        return {"object": "plan", "name": plan.name, "limits": plan.limits, "price": price,
                "current": plan.name == account().tier}

    return list_response(paginate_list(plans.all_plans(), lambda p: p.name, **page_args()), plan_json)


@bp.post("/billing/setup")
@key_required(*ACCOUNT_KEY)
def setup():
    """Attach `payment_method_id`, make it the default, and subscribe to Pro (or `plan`).

    A card whose bank asks for 3-D Secure answers 402 `requires_action` with
    `payment_intent_client_secret` and `subscription_id` (see `setup_confirm`)."""
    body = json_body()
    plan_name = body.get("plan", "pro")
    if not isinstance(plan_name, str):
        raise InvalidInput("plan must be the name of a paid plan, such as pro.", param="plan")
    return _setup_answer(subscriptions.start(account(), body.get("payment_method_id"), plan_name))


@bp.post("/billing/setup/confirm")
@key_required(*ACCOUNT_KEY)
def setup_confirm():
    """After Stripe.js `confirmCardPayment` of a 402 `requires_action` from setup: finish the
    upgrade (exactly once, shared with the `invoice.paid` webhook) or report that it failed."""
    row = subscriptions.confirm_first_payment(account(), json_body().get("subscription_id"))
    return _setup_answer(row)


def _setup_answer(row: Subscription) -> Response:
    plan = plans.plan_for(row.plan)
    return jsonify(tier=account().tier, call_limit=plan.limit("lifetimeApiCalls"),
                   subscription=subscription_json(row),
                   message=f"You are on {plan.display_name}. New limits apply now.")


@bp.get("/billing/subscription")
@key_required(*ACCOUNT_KEY)
def get_subscription():
    return jsonify(subscription_json(subscriptions.current(account())))


@bp.post("/billing/cancel")
@key_required(*ACCOUNT_KEY)
def cancel():
    row = subscriptions.set_cancel_at_period_end(account(), True)
    return jsonify(success=True, cancelAt=_iso(row.cancel_at), subscription=subscription_json(row))


@bp.post("/billing/resume")
@key_required(*ACCOUNT_KEY)
def resume():
    row = subscriptions.set_cancel_at_period_end(account(), False)
    return jsonify(success=True, subscription=subscription_json(row))


@bp.post("/billing/checkout")
@key_required(*ACCOUNT_KEY)
def checkout():
    body = json_body()
    url = subscriptions.checkout_url(account(), body.get("priceId"), body.get("successUrl"),
                                     body.get("cancelUrl"))
    return jsonify(url=url)


@bp.post("/billing/portal")
@key_required(*ACCOUNT_KEY)
def portal():
    return jsonify(url=subscriptions.portal_url(account(), json_body().get("returnUrl")))
