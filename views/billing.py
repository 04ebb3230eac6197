"""Billing pages: upgrade with a card, cancel and resume, Stripe Checkout and Customer
Portal, invoices. The same services as /v1/billing/*."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, jsonify, redirect, request, url_for

from services import uow
from services.billing import hosted, invoices, plans, subscriptions
from services.errors import TallyError
from services.identity import members
from services.pagination import parse_limit
from views.api.declare import validated
from views.api.schemas.plans import SetupConfirmRequest, SetupRequest
from views.errors import refusal_response
from views.htmx import render_page
from views.idempotency import operation_key
from views.membership import current_account, customer_page
from views.pdf import pdf_response

bp = Blueprint("billing", __name__, url_prefix="/billing")


@bp.get("/upgrade")
@customer_page(members.PAY)
def upgrade():
    account = current_account()
    return render_page("billing/upgrade.html", account=account, plan=subscriptions.paid_plan("pro"),
                       current=plans.plan_for(account.tier),
                       subscription=subscriptions.current(account),
                       publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"],
                       stripe_js_url=current_app.config["STRIPE_JS_URL"])


@bp.post("/upgrade")
@customer_page(members.PAY)
def upgrade_submit():
    """Called by the page's script with the PaymentMethod Stripe.js created. A card that needs
    3-D Secure answers 402 `requires_action` with the client secret for Stripe.js."""
    body = validated(SetupRequest, {"payment_method_id": request.form.get("payment_method_id"),
                                    "plan": request.form.get("plan", "pro")})
    return _upgraded(subscriptions.start(current_account(), body.payment_method_id, body.plan))


@bp.post("/upgrade/confirm")
@customer_page(members.PAY)
def upgrade_confirm():
    """Called by the page's script after Stripe.js `confirmCardPayment` (3-D Secure), whether
    the payer completed or failed the authentication: Stripe's state decides."""
    body = validated(SetupConfirmRequest, {"subscription_id": request.form.get("subscription_id")})
    return _upgraded(subscriptions.confirm_first_payment(current_account(), body.subscription_id))


def _upgraded(result: subscriptions.Subscribed):
    if result.refusal is not None:  # 402 (requires_action: the page's script runs 3-D Secure)
        return refusal_response(result.refusal)
    flash(f"You are on {result.subscription.plan.capitalize()} now. Your new limits apply "
          "immediately.")
    return jsonify(tier=current_account().tier, redirect=url_for("pages.plans"))


@bp.get("/subscription")
@customer_page(members.READ)
def subscription_page():
    """The generic billing API's path in a browser: the plan is on the Plans page."""
    return redirect(url_for("pages.plans"), code=303)


@bp.get("/usage")
@customer_page(members.READ)
def usage_page():
    """The generic billing API's path in a browser: the Usage page."""
    return redirect(url_for("pages.usage"), code=303)


@bp.get("/cancel")
@customer_page(members.PAY)
def cancel_confirm():
    """Ask before cancelling, saying what happens and when (as Stripe's portal does)."""
    subscription = subscriptions.current(current_account())
    if subscription is None or subscription.cancel_at_period_end:
        return redirect(url_for("pages.plans"), code=303)
    return render_page("billing/cancel.html", subscription=subscription)


@bp.post("/cancel")
@customer_page(members.PAY)
def cancel():
    row = subscriptions.set_cancel_at_period_end(current_account(), True)
    flash(f"Your plan is cancelled. You keep {row.plan.capitalize()} until "
          f"{row.cancel_at:%B %-d, %Y}, then move to Free." if row.cancel_at else
          "Your plan is cancelled at the end of the period.")
    return redirect(url_for("pages.plans"), code=303)


@bp.post("/resume")
@customer_page(members.PAY)
def resume():
    row = subscriptions.set_cancel_at_period_end(current_account(), False)
    flash(f"Welcome back: {row.plan.capitalize()} renews as usual.")
    return redirect(url_for("pages.plans"), code=303)


@bp.post("/portal")
@customer_page(members.PAY)
def portal():
    """Manage the card and subscription on Stripe's hosted Customer Portal."""
    return redirect(hosted.portal_url(
        current_account(), url_for("pages.plans", _external=True)), code=303)


@bp.post("/checkout")
@customer_page(members.PAY)
def checkout():
    plan = subscriptions.paid_plan(request.form.get("plan", "pro"))
    url = hosted.checkout_url(
        current_account(), plan.name,
        url_for("billing.checkout_return", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
        url_for("pages.plans", _external=True), operation_key())
    return redirect(url, code=303)


@bp.get("/checkout/return")
@customer_page(members.PAY)
def checkout_return():
    session_id = request.args.get("session_id", "")
    try:
        row = hosted.complete_checkout(session_id) if session_id.startswith("cs_") else None
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        flash(exc.message, "error")
        row = None
    if row is not None and row.account_id == current_account().id:
        flash(f"You are on {row.plan.capitalize()} now. Your new limits apply immediately.")
    return redirect(url_for("pages.plans"), code=303)


@bp.get("/invoices", endpoint="invoices")
@customer_page(members.READ)
def invoice_list():
    page = invoices.list_for(current_account().id, limit=parse_limit(request.args.get("limit")),
                             starting_after=request.args.get("starting_after") or None,
                             ending_before=request.args.get("ending_before") or None)
    has_newer = bool(request.args.get("starting_after")) or (
        bool(request.args.get("ending_before")) and page.has_more)
    return render_page("invoices/index.html", page=page, has_newer=has_newer)


@bp.get("/invoices/<invoice_id>", endpoint="invoice")
@customer_page(members.READ)
def invoice_page(invoice_id: str):
    invoice = invoices.get(invoice_id, account_id=current_account().id)
    account = current_account()
    return render_page("invoices/show.html", invoice=invoice, account=account,
                       customer=account.customer)


@bp.get("/invoices/<invoice_id>/pdf", endpoint="invoice_pdf")
@customer_page(members.READ)
def invoice_pdf_page(invoice_id: str):
    return pdf_response(invoices.get(invoice_id, account_id=current_account().id))
