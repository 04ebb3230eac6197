"""Account, balance and card top-ups."""

from __future__ import annotations

from flask import current_app, jsonify, request

from services import usage as metering
from services.billing import plans
from services.errors import InvalidInput
from services.ledger import entries as ledger
from services.ledger import topups
from views.api import ACCOUNT_KEY, USAGE_OR_ACCOUNT_KEY, account, bp, json_body, key_required
from views.api.lists import list_response, page_args


@bp.get("/me")
@key_required(*ACCOUNT_KEY)
def me():
    acct = account()
    return jsonify(account_id=acct.id, email=acct.customer.primary_email, name=acct.name,
                   tier=acct.tier)


@bp.get("/billing")
@key_required(*ACCOUNT_KEY)
def billing():
    acct = account()
    plan = plans.plan_for(acct.tier)
    # calls_total is all-time, so call_limit is the all-time cap (lifetimeApiCalls).
    call_limit = plan.limit("lifetimeApiCalls")
    monthly_limit = plan.limit("apiCalls")
    calls_total = metering.lifetime_total(acct, "apiCalls")
    period_calls = metering.summary(acct).get("apiCalls")
    over = (monthly_limit is not None and period_calls is not None
            and period_calls.current >= monthly_limit) or (
        call_limit is not None and calls_total >= call_limit)
    return jsonify(
        tier=acct.tier,
        calls_total=calls_total,
        call_limit=call_limit,
        over_limit=over,
        stripe_customer_id=acct.customer.stripe_customer_id,
        balance=acct.available_balance,
        currency=acct.currency,
    )


@bp.get("/billing/balance")
@key_required(*USAGE_OR_ACCOUNT_KEY)
def balance():
    """`balance` is what can be spent: the posted balance less rated usage not yet posted."""
    acct = account()
    return jsonify(balance=acct.available_balance, posted_balance=acct.balance,
                   pending_usage=acct.pending_usage, currency=acct.currency)


@bp.get("/billing/ledger")
@key_required(*ACCOUNT_KEY)
def ledger_entries():
    return list_response(ledger.list_for(account().id, **page_args()), lambda e: {
        "id": e.id, "object": "ledger_entry", "amount": e.amount, "currency": e.currency,
        "kind": e.kind, "description": e.description, "created_at": e.created_at.isoformat()})


@bp.get("/billing/config")
@bp.get("/billing/stripe-config", endpoint="stripe_config")
def billing_config():
    return jsonify(stripe_publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"])


@bp.post("/billing/payment-intents")
@bp.post("/billing/create-payment-intent", endpoint="create_payment_intent")
@key_required(*ACCOUNT_KEY)
def payment_intents():
    body = json_body()
    if "amount" not in body:
        raise InvalidInput("amount is required: minor units (cents), e.g. 2500 for 25.00.",
                           param="amount")
    started = topups.start_top_up(account(), body["amount"],
                                  idempotency_key=request.headers.get("Idempotency-Key"))
    return jsonify(payment_intent_id=started.payment_intent_id,
                   client_secret=started.client_secret,
                   amount=started.amount, currency=started.currency)


@bp.post("/billing/confirm-payment")
@key_required(*ACCOUNT_KEY)
def confirm_payment():
    body = json_body()
    if "payment_intent_id" not in body:
        raise InvalidInput("payment_intent_id is required.", param="payment_intent_id")
    credit = topups.credit_payment_intent(body["payment_intent_id"], account_id=account().id)
    return jsonify(credited=credit.credited, balance=credit.balance, currency=credit.currency)
