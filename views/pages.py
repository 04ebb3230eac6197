"""The customer's pages: dashboard (balance, tier, recent ledger) and top-up."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from services import ledger, plans, topups
from services.money import format_money, parse_major
from views.forms import TopUpForm
from views.htmx import render_page
from views.session import current_account, customer_page

bp = Blueprint("pages", __name__)

PRESETS = (1000, 2500, 5000, 10000)  # minor units offered as one-click amounts


@bp.get("/")
@customer_page
def dashboard():
    account = current_account()
    return render_page(
        "dashboard.html",
        blocks=("balance", "ledger"),
        account=account,
        plan=plans.plan_for(account.tier),
        entries=ledger.recent_entries(account.id, limit=10),
    )


@bp.get("/topup")
@customer_page
def topup():
    account = current_account()
    low, high = topups.bounds()
    return render_page(
        "topup.html",
        account=account,
        form=TopUpForm(),
        presets=[p for p in PRESETS if low <= p <= high],
        low=low,
        high=high,
        publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"],
        stripe_js_url=current_app.config["STRIPE_JS_URL"],
    )


@bp.post("/topup/intent")
@customer_page
def topup_intent():
    """Step 1 for Stripe.js: validate the amount and create the PaymentIntent."""
    account = current_account()
    form = TopUpForm()
    form.validate()  # CSRF is checked globally; the amount is parsed by the service
    amount = parse_major(form.amount.data or "", account.currency)
    started = topups.start_top_up(account, amount,
                                  idempotency_key=request.headers.get("Idempotency-Key"))
    return jsonify(payment_intent_id=started.payment_intent_id,
                   client_secret=started.client_secret,
                   amount=started.amount, currency=started.currency)


@bp.post("/topup/confirm")
@customer_page
def topup_confirm():
    """Step 2, after `confirmCardPayment`: credit the PaymentIntent (exactly once)."""
    credit = topups.credit_payment_intent(request.form.get("payment_intent_id"),
                                          account_id=current_account().id)
    return jsonify(credited=credit.credited, amount=credit.amount, balance=credit.balance,
                   currency=credit.currency,
                   amount_display=format_money(credit.amount, credit.currency),
                   balance_display=format_money(credit.balance, credit.currency))
