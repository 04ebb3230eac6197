"""Plans, the Pro subscription, Stripe Checkout and the Customer Portal."""

from __future__ import annotations

from flask import Response

from models import Subscription as SubscriptionRow
from services.billing import hosted, plans, subscriptions
from services.billing.gateway import gateway
from services.identity import members
from services.pagination import paginate_list
from views.api import ACCOUNT_KEY, account, bp
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.plans import (
    CancelResult,
    CheckoutRequest,
    Plan,
    PlanList,
    PlanPrice,
    PortalRequest,
    ResumeResult,
    Setup,
    SetupConfirmRequest,
    SetupRequest,
    Subscription,
    Url,
)
from views.errors import refusal_response
from views.idempotency import operation_key

TAG = "Plans and subscriptions"


def subscription_answer(row: SubscriptionRow | None) -> Subscription:
    if row is None:
        return Subscription(id=None, plan="free", status="none", currentPeriodStart=None,
                            currentPeriodEnd=None, cancelAtPeriodEnd=False, cancelAt=None)
    return Subscription(id=row.id, plan=row.plan, status=row.status,
                        currentPeriodStart=row.current_period_start,
                        currentPeriodEnd=row.current_period_end,
                        cancelAtPeriodEnd=row.cancel_at_period_end, cancelAt=row.cancel_at)


@bp.get("/billing/plans")
@operation(ACCOUNT_KEY, TAG, "Plans and prices", PlanList, query=PageQuery, stripe=True,
           permission=members.READ)
def list_plans(query: PageQuery) -> PlanList:
    """The plans in the configuration's order; a cursor is a plan's name."""

    def plan_answer(plan: plans.Plan) -> Plan:
        price = None
        if plan.price is not None:
            price = PlanPrice.model_validate({
                "amount": plan.price.amount, "currency": plan.price.currency,
                "interval": plan.price.interval,
                "priceId": subscriptions.price_id(plan) if gateway().configured else None})
        return Plan(name=plan.name, limits=plan.limits, price=price,
                    current=plan.name == account().tier)

    return PlanList.of(paginate_list(plans.all_plans(), lambda p: p.name, **query.page()), plan_answer)


SETUP = ("Attaches the PaymentMethod (a `pm_...`, or one of Stripe's test ids such as "
         "`pm_card_visa`), makes it the default and subscribes to the plan; the new limits apply "
         "at once. A payment method Stripe cannot use is the caller's and changes nothing "
         "(nothing is charged): 404 `resource_missing` (no such payment method), 402 "
         "`card_declined`, or 400 `stripe_refused` (say, another customer's), each with `param` "
         "`payment_method_id`. A card whose bank asks for authentication (3-D Secure) is a 402 "
         "`requires_action` with `payment_intent_client_secret` and `subscription_id`: nothing is "
         "charged yet. Confirm the client secret with Stripe.js `confirmCardPayment`, then call "
         "POST /v1/billing/setup/confirm with the `subscription_id`.")
SETUP_CONFIRM = (
    "After a 402 `requires_action` from POST /v1/billing/setup and Stripe.js "
    "`confirmCardPayment`. Authenticated: the answer of a setup that needed no authentication "
    "(the upgrade happens once, whether this call or Stripe's `invoice.paid` webhook gets there "
    "first; calling again answers the same). Still waiting for authentication: 402 "
    "`requires_action` again. Failed or abandoned: 402 `subscription_incomplete`; the "
    "subscription is cancelled and its invoice voided, nothing was charged or is owed and the "
    "plan is unchanged. 404 for a subscription that is not the account's.")


@bp.post("/billing/setup")
@operation(ACCOUNT_KEY, TAG, "Subscribe with a card", Setup, body=SetupRequest, stripe=True,
           errors=(402, 404, 409), description=SETUP,
           permission=members.PAY)
def setup(body: SetupRequest) -> Setup | Response:
    return _setup_answer(subscriptions.start(account(), body.payment_method_id, body.plan))


@bp.post("/billing/setup/confirm")
@operation(ACCOUNT_KEY, TAG, "Finish a subscription after 3-D Secure", Setup,
           body=SetupConfirmRequest, stripe=True, errors=(402, 404), description=SETUP_CONFIRM,
           permission=members.PAY)
def setup_confirm(body: SetupConfirmRequest) -> Setup | Response:
    return _setup_answer(subscriptions.confirm_first_payment(account(), body.subscription_id))


def _setup_answer(result: subscriptions.Subscribed) -> Setup | Response:
    if result.refusal is not None:  # 402: the subscription is recorded as Stripe has it
        return refusal_response(result.refusal)
    row = result.subscription
    plan = plans.plan_for(row.plan)
    return Setup(tier=account().tier, call_limit=plan.limit("lifetimeApiCalls"),
                 subscription=subscription_answer(row),
                 message=f"You are on {plan.display_name}. New limits apply now.")


@bp.get("/billing/subscription")
@operation(ACCOUNT_KEY, TAG, "The subscription", Subscription,
           permission=members.READ)
def get_subscription() -> Subscription:
    return subscription_answer(subscriptions.current(account()))


@bp.post("/billing/cancel")
@operation(ACCOUNT_KEY, TAG, "Cancel at period end", CancelResult, stripe=True, errors=(404,),
           permission=members.PAY)
def cancel() -> CancelResult:
    row = subscriptions.set_cancel_at_period_end(account(), True)
    return CancelResult(cancelAt=row.cancel_at, subscription=subscription_answer(row))


@bp.post("/billing/resume")
@operation(ACCOUNT_KEY, TAG, "Undo a cancellation", ResumeResult, stripe=True, errors=(404,),
           permission=members.PAY)
def resume() -> ResumeResult:
    row = subscriptions.set_cancel_at_period_end(account(), False)
    return ResumeResult(subscription=subscription_answer(row))


@bp.post("/billing/checkout")
@operation(ACCOUNT_KEY, TAG, "A Stripe Checkout page for a plan", Url, body=CheckoutRequest,
           stripe=True,
           permission=members.PAY)
def checkout(body: CheckoutRequest) -> Url:
    return Url(url=hosted.checkout_url(account(), body.priceId, body.successUrl, body.cancelUrl,
                                              operation_key()))


@bp.post("/billing/portal")
@operation(ACCOUNT_KEY, TAG, "A Stripe Customer Portal session", Url, body=PortalRequest, stripe=True,
           permission=members.PAY)
def portal(body: PortalRequest) -> Url:
    return Url(url=hosted.portal_url(account(), body.returnUrl))
