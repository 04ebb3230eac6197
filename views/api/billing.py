"""Account, balance and card top-ups."""

from __future__ import annotations

from flask import current_app

from services import uow
from services import usage as metering
from services.billing import plans
from services.errors import InvalidInput
from services.identity import members
from services.ledger import entries as ledger
from services.ledger import topups
from services.money import format_money
from views.api import ACCOUNT_KEY, PUBLIC, USAGE_OR_ACCOUNT_KEY, account, bp
from views.api.declare import OneOf, operation
from views.api.schemas.account import (
    Balance,
    Billing,
    ConfirmPayment,
    ConfirmPaymentRequest,
    LedgerEntry,
    LedgerEntryList,
    LitPaymentIntentRequest,
    Me,
    PaymentIntent,
    PaymentIntentRequest,
    StripeConfig,
    lit_bounds,
    payment_intent_shape,
)
from views.api.schemas.common import PageQuery
from views.idempotency import operation_key


@bp.get("/me")
@operation(ACCOUNT_KEY, "Account", "The key's account", Me,
           description="`agent_id`, `agent_name` and `owner_identifier` are Lithtrix's names for "
                       "`account_id`, `name` and `email`.",
           permission=members.READ)
def me() -> Me:
    acct = account()
    email = acct.customer.primary_email
    return Me(account_id=acct.id, email=email, name=acct.name, tier=acct.tier,
              agent_id=acct.id, agent_name=acct.name, owner_identifier=email)


@bp.get("/billing")
@operation(ACCOUNT_KEY, "Account", "Plan, all-time calls, balance", Billing,
           description="`calls_total` is the all-time count of apiCalls and `call_limit` its "
                       "all-time cap; `over_limit` is true when a call would be refused now. "
                       "Monthly limits are in GET /v1/billing/usage.",
           permission=members.READ)
def billing() -> Billing:
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
    return Billing(tier=acct.tier, calls_total=calls_total, call_limit=call_limit, over_limit=over,
                   stripe_customer_id=acct.customer.stripe_customer_id,
                   balance=acct.available_balance, currency=acct.currency)


@bp.get("/billing/balance")
@operation(USAGE_OR_ACCOUNT_KEY, "Account", "The balance", Balance,
           permission=members.READ)
def balance() -> Balance:
    acct = account()
    spendable = acct.available_balance
    credit = max(spendable, 0)
    return Balance(balance=spendable, posted_balance=acct.balance,
                   pending_usage=acct.pending_usage, currency=acct.currency,
                   balance_cents=-credit,  # Lit's sign: negative while credit is available
                   balance_display=f"{format_money(credit, acct.currency)} credit")


@bp.get("/billing/ledger")
@operation(ACCOUNT_KEY, "Account", "Ledger entries, newest first", LedgerEntryList, query=PageQuery,
           permission=members.READ)
def ledger_entries(query: PageQuery) -> LedgerEntryList:
    return LedgerEntryList.of(ledger.list_for(account().id, **query.page()), LedgerEntry.model_validate)


@bp.get("/billing/config")
@bp.get("/billing/stripe-config", endpoint="stripe_config")
@bp.get("/billing/stripe_config", endpoint="stripe_config_lit")
@operation(PUBLIC, "Top-ups", "The Stripe publishable key", StripeConfig,
           description="Also at /v1/billing/stripe-config and /v1/billing/stripe_config (Lit "
                       "Protocol's paths), with `publishable_key`, Lit's name for it.")
def billing_config() -> StripeConfig:
    key = current_app.config["STRIPE_PUBLISHABLE_KEY"]
    return StripeConfig(stripe_publishable_key=key, publishable_key=key)


@bp.post("/billing/payment-intents")
@bp.post("/billing/create-payment-intent", endpoint="create_payment_intent")
@bp.post("/billing/create_payment_intent", endpoint="create_payment_intent_lit")
@operation(ACCOUNT_KEY, "Top-ups", "Start a card top-up", PaymentIntent,
           body=OneOf((PaymentIntentRequest, LitPaymentIntentRequest), payment_intent_shape),
           stripe=True, errors=(402, 404), description=(
               "Pay `client_secret` with Stripe.js confirmCardPayment, then call POST "
               "/v1/billing/confirm-payment (the webhook credits it too, exactly once). "
               "Takes Tally's `{amount}` or Lit Protocol's `{amount_cents}`. With "
               "`payment_method_id` (a saved card) Tally confirms it at once: `succeeded` and "
               "credited in the answer, `requires_action` for 3-D Secure (finish it with "
               "confirmCardPayment(client_secret), then confirm-payment), or 402 when the card "
               "is declined (nothing charged). Another account's card is a 404."),
           permission=members.PAY)
def payment_intents(body: PaymentIntentRequest | LitPaymentIntentRequest) -> PaymentIntent:
    acct = account()
    card = body.payment_method_id if isinstance(body, PaymentIntentRequest) else None
    started = topups.start_top_up(acct, _top_up_amount(body), idempotency_key=operation_key(),
                                  payment_method_id=card)
    answer = PaymentIntent(payment_intent_id=started.payment_intent_id,
                           client_secret=started.client_secret, amount=started.amount,
                           currency=started.currency, status=started.status)
    if started.status == "succeeded":
        uow.commit()  # the PaymentIntent is recorded; crediting reads it from Stripe first
        credit = topups.credit_payment_intent(started.payment_intent_id, account_id=acct.id)
        answer.credited, answer.balance = credit.credited, credit.balance
    return answer


def _top_up_amount(body: PaymentIntentRequest | LitPaymentIntentRequest) -> int:
    if isinstance(body, PaymentIntentRequest):
        return body.amount  # the service checks Tally's bounds
    low, high = lit_bounds()
    if not low <= body.amount_cents <= high:
        currency = account().currency
        raise InvalidInput(f"Top up between {format_money(low, currency)} and "
                           f"{format_money(high, currency)}.", code="amount_out_of_range",
                           param="amount_cents")
    return body.amount_cents


@bp.post("/billing/confirm-payment")
@bp.post("/billing/confirm_payment", endpoint="confirm_payment_lit")
@operation(ACCOUNT_KEY, "Top-ups", "Credit a paid PaymentIntent, exactly once", ConfirmPayment,
           body=ConfirmPaymentRequest, stripe=True, errors=(404,),
           description="409 when the PaymentIntent has not succeeded or does not match what "
                       "Tally created.",
           permission=members.PAY)
def confirm_payment(body: ConfirmPaymentRequest) -> ConfirmPayment:
    credit = topups.credit_payment_intent(body.payment_intent_id, account_id=account().id)
    return ConfirmPayment(credited=credit.credited, balance=credit.balance, currency=credit.currency)
