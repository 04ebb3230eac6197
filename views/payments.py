"""Pages that keep credit from running dry: saved cards (Payment methods), auto-recharge
(a form on the top-up page), notification preferences (on the Account page), and the
banner an auto-recharge that needs the customer shows on every page. The same services as
/v1/payment-methods, /v1/billing/setup-intents and /v1/billing/auto-recharge."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from models.recharge import DISABLED, FIXED, METHODS, REQUIRES_ACTION
from services import uow
from services.billing import cards
from services.errors import InvalidInput, TallyError
from services.identity import members
from services.ledger import recharge, topups
from services.money import format_money, parse_major
from services.notifications import notices
from views.api.declare import validated
from views.api.schemas.cards import AttachRequest
from views.idempotency import operation_key
from views.membership import current_account, customer_page
from views.session import audit_as

bp = Blueprint("payments", __name__)


@bp.get("/payment-methods")
@customer_page(members.PAY)
def payment_methods():
    return render_template("payment_methods.html", account=current_account(),
                           cards=cards.list_cards(current_account()), **_stripe_js())


def _stripe_js() -> dict[str, str]:
    return {"publishable_key": current_app.config["STRIPE_PUBLISHABLE_KEY"],
            "stripe_js_url": current_app.config["STRIPE_JS_URL"]}


@bp.post("/payment-methods/setup")
@customer_page(members.PAY)
@audit_as("card.setup")
def setup():
    """For the page's script: a SetupIntent to confirm with Stripe.js confirmCardSetup."""
    started = cards.start_setup(current_account(), idempotency_key=operation_key())
    return jsonify(setup_intent_id=started.setup_intent_id, client_secret=started.client_secret)


@bp.post("/payment-methods")
@customer_page(members.PAY)
@audit_as("card.add")
def add():
    """For the page's script, after confirmCardSetup: save the card it confirmed."""
    body = validated(AttachRequest, {"payment_method_id": request.form.get("payment_method_id")})
    card = cards.attach(current_account(), body.payment_method_id)
    flash(f"Card {card.brand.capitalize()} •••• {card.last4} saved"
          f"{' as your default' if card.default else ''}.")
    return jsonify(id=card.id, redirect=url_for("payments.payment_methods"))


@bp.post("/payment-methods/<payment_method_id>/default")
@customer_page(members.PAY)
@audit_as("card.default")
def make_default(payment_method_id: str):
    card = cards.make_default(current_account(), payment_method_id)
    flash(f"{card.brand.capitalize()} •••• {card.last4} is your default card now.")
    return redirect(url_for("payments.payment_methods"), code=303)


@bp.post("/payment-methods/<payment_method_id>/remove")
@customer_page(members.PAY)
@audit_as("card.remove")
def remove(payment_method_id: str):
    card = cards.remove(current_account(), payment_method_id)
    flash(f"{card.brand.capitalize()} •••• {card.last4} removed.")
    return redirect(url_for("payments.payment_methods"), code=303)


# Auto-recharge (a form on the top-up page) -----------------------------------------------


def _minor(name: str, currency: str, *, required: bool) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        if required:
            raise InvalidInput(f"Enter the {name.replace('_', ' ')}.", param=name)
        return None
    return parse_major(raw, currency, param=name)


def _wanted(currency: str) -> recharge.Settings:
    enabled = request.form.get("enabled") == "on"
    method = request.form.get("method") or FIXED
    if method not in METHODS:
        raise InvalidInput("Choose a fixed amount or a target balance.", param="method")
    return recharge.Settings(
        enabled=enabled, threshold=_minor("threshold", currency, required=enabled) or 0,
        method=method,
        amount=_minor("amount", currency, required=enabled and method == FIXED),
        target=_minor("target", currency, required=enabled and method != FIXED),
        payment_method_id=request.form.get("payment_method_id") or None,
        monthly_limit=_minor("monthly_limit", currency, required=False))


@bp.post("/topup/auto-recharge")
@customer_page(members.PAY)
@audit_as("auto_recharge.set")
def auto_recharge():
    account = current_account()
    try:
        wanted = _wanted(account.currency)
        row = recharge.configure(account, wanted)
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        flash(f"Auto-recharge not saved: {exc.message}", "error")
        return redirect(url_for("pages.topup", _anchor="auto-recharge"), code=303)
    if row.enabled:
        how = (f"add {format_money(row.amount or 0, account.currency)}" if row.method == FIXED
               else f"bring it up to {format_money(row.target or 0, account.currency)}")
        flash(f"Auto-recharge is on: when credit falls below "
              f"{format_money(row.threshold, account.currency)}, Tally will {how}.")
    else:
        flash("Auto-recharge is off.")
    return redirect(url_for("pages.topup", _anchor="auto-recharge"), code=303)


def topup_context(account: Any) -> dict[str, Any]:
    """What the top-up page shows of saved cards and auto-recharge."""
    row = recharge.settings_of(account.id)
    return {"saved_cards": cards.list_cards(account), "recharge": row,
            "recharge_status": row.status if row is not None else DISABLED,
            "last_attempt": recharge.last_attempt(account.id),
            "attempts": recharge.attempts(account.id, limit=5),
            "pending_secret": topups.client_secret(account, row.pending_payment_intent_id)
            if row is not None and row.status == REQUIRES_ACTION
            and row.pending_payment_intent_id else None}


# Notification preferences (on the Account page) -------------------------------------------


@bp.post("/account/notifications")
@customer_page(members.SETTINGS)
@audit_as("notifications.set")
def notifications():
    account = current_account()
    prefs = {kind: request.form.get(f"notify_{kind}") == "on" for kind in notices.KINDS
             if kind not in notices.ALWAYS}
    try:
        threshold = _minor("low_balance_threshold", account.currency, required=False)
        notices.set_preferences(account, prefs, threshold)
    except TallyError as exc:
        uow.rollback()
        flash(exc.message, "error")
    else:
        flash("Notification preferences saved.")
    return redirect(url_for("auth.account", _anchor="notifications"), code=303)


@bp.app_context_processor
def _recharge_banner() -> dict[str, Any]:
    """On every customer page: an auto-recharge that waits for the customer, or turned off."""
    account = g.get("account")
    if account is None:
        return {}
    row = recharge.settings_of(account.id)
    if row is None:
        return {}
    turned_off = row.status == DISABLED and row.consecutive_failures >= recharge.MAX_FAILURES
    return {"recharge_banner": "action" if row.status == REQUIRES_ACTION else
            "off" if turned_off else None}
