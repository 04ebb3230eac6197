"""The customer's pages: dashboard (balance, tier, recent ledger) and top-up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, redirect, request, url_for

from models.base import utcnow
from services import uow
from services import usage as metering
from services.billing import plans, subscriptions
from services.errors import InvalidInput, TallyError
from services.identity import members
from services.ledger import entries as ledger
from services.ledger import recharge, topups
from services.money import format_major, format_money, parse_major
from services.staff import audit
from services.usage import periods, rating, settings
from views import payments
from views.api.declare import validated
from views.api.schemas.account import ConfirmPaymentRequest
from views.forms import TopUpForm, UsageSettingsForm
from views.htmx import render_page
from views.idempotency import operation_key
from views.membership import current_account, customer_page
from views.session import audit_as

bp = Blueprint("pages", __name__)

PRESETS = (1000, 2500, 5000, 10000)  # minor units offered as one-click amounts


@bp.get("/")
@customer_page(members.READ)
def dashboard():
    account = current_account()
    return render_page(
        "dashboard.html",
        blocks=("balance", "ledger"),
        account=account,
        plan=plans.plan_for(account.tier),
        entries=ledger.recent_entries(account.id, limit=10),
        usage=metering.summary(account),
        alerts=metering.current_alerts(account),
        spend=rating.spend(account, periods.month_of(utcnow(), account.time_zone)),
        staff_viewed_at=audit.last_staff_view(account.customer_id),
    )


@bp.get("/topup")
@customer_page(members.PAY)
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
        **payments.topup_context(account),
    )


@bp.post("/topup/intent")
@customer_page(members.PAY)
@audit_as("topup.intent")
def topup_intent():
    """Step 1 for Stripe.js: validate the amount and create the PaymentIntent. With a saved
    card (`payment_method_id`) Tally confirms it at once: `succeeded` (the script then
    credits it with step 2) or `requires_action` (3-D Secure first)."""
    account = current_account()
    form = TopUpForm()
    form.validate()  # CSRF is checked globally; the amount is parsed by the service
    amount = parse_major(form.amount.data or "", account.currency)
    card = request.form.get("payment_method_id") or None
    started = topups.start_top_up(account, amount, idempotency_key=operation_key(),
                                  payment_method_id=card)
    return jsonify(payment_intent_id=started.payment_intent_id,
                   client_secret=started.client_secret, status=started.status,
                   amount=started.amount, currency=started.currency)


@bp.post("/topup/confirm")
@customer_page(members.PAY)
@audit_as("topup.confirm")
def topup_confirm():
    """Step 2, after `confirmCardPayment`: credit the PaymentIntent (exactly once)."""
    body = validated(ConfirmPaymentRequest, {"payment_intent_id": request.form.get("payment_intent_id")})
    credit = topups.credit_payment_intent(body.payment_intent_id, account_id=current_account().id)
    return jsonify(credited=credit.credited, amount=credit.amount, balance=credit.balance,
                   currency=credit.currency,
                   amount_display=format_money(credit.amount, credit.currency),
                   balance_display=format_money(credit.balance, credit.currency))


@bp.get("/plans", endpoint="plans")
@customer_page(members.READ)
def plans_page():
    account = current_account()
    return render_page("plans.html", account=account, plans=plans.all_plans(),
                       current=plans.plan_for(account.tier),
                       subscription=subscriptions.current(account))


def _usage_page(form: UsageSettingsForm | None = None, status: int = 200):
    account = current_account()
    summary = metering.summary(account)
    charts = {m.meter.name: metering.series(account, m.meter, summary.period.start,
                                        summary.period.end, "day")
              for m in summary.meters}
    if form is None:
        values = settings.as_dict(account)
        form = UsageSettingsForm(data={
            "time_zone": values["time_zone"],
            "alert_thresholds": ", ".join(str(t) for t in values["alert_thresholds"]),
            "spend_cap": "" if values["spend_cap"] is None else format_major(
                values["spend_cap"], account.currency)})
    return render_page("usage.html", blocks=("meters",), account=account, summary=summary,
                       charts=charts, alerts=metering.current_alerts(account), form=form,
                       spend=rating.spend(account, summary.period),
                       tz=periods.zone(account.time_zone), one_day=timedelta(days=1),
                       status=status)


ACTIVITY_PAGE_SIZE = 50


@bp.get("/activity")
@customer_page(members.READ)
def activity():
    """The whole ledger, a page at a time (the dashboard shows the last 10)."""
    account = current_account()
    after, before = request.args.get("starting_after"), request.args.get("ending_before")
    page = ledger.list_for(account.id, limit=ACTIVITY_PAGE_SIZE, starting_after=after,
                           ending_before=before)
    # has_more looks onward from the cursor: older after `starting_after`, newer before
    # `ending_before`; the way back is there whenever a cursor brought us here.
    older = page.has_more if before is None else bool(page.items)
    newer = (page.has_more if before is not None else after is not None) and bool(page.items)
    return render_page("activity.html", account=account, entries=page.items, older=older,
                       newer=newer, attempts=recharge.attempts(account.id, limit=20))


@bp.get("/usage")
@customer_page(members.READ)
def usage():
    return _usage_page()


def _thresholds(field: Any) -> list[int]:
    """`80, 100%` → [80, 100]; a message on the field otherwise."""
    text = (field.data or "").replace("%", "")
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if any(not t.isascii() or not t.isdigit() or not settings.THRESHOLD_MIN <= int(t)
           <= settings.THRESHOLD_MAX for t in parts):
        field.errors = [f"Use whole percentages from {settings.THRESHOLD_MIN} to "
                        f"{settings.THRESHOLD_MAX}, separated by commas, such as 80, 100."]
        return []
    if len(set(parts)) > settings.MAX_THRESHOLDS:
        field.errors = [f"Set at most {settings.MAX_THRESHOLDS} thresholds."]
        return []
    return sorted({int(t) for t in parts})


def _spend_cap(field: Any, currency: str) -> int | None:
    """The cap in minor units (None when empty); a message on the field otherwise."""
    text = (field.data or "").strip()
    if not text:
        return None
    try:
        cap = parse_major(text, currency, param="spend_cap")
    except InvalidInput as exc:
        field.errors = [exc.message]
        return None
    if cap < 0:
        field.errors = ["The spend cap can't be below zero; leave it empty for no cap."]
    elif cap > settings.MAX_SPEND_CAP:
        field.errors = [f"The spend cap can be at most "
                        f"{format_money(settings.MAX_SPEND_CAP, currency)}."]
    return cap


@bp.post("/usage/settings")
@customer_page(members.SETTINGS)
@audit_as("settings.update")
def usage_settings():
    """The same service as POST /v1/billing/settings; errors show beside their field."""
    account = current_account()
    form = UsageSettingsForm()
    form.validate()  # every field is checked below too: all faults show at once
    time_zone = (form.time_zone.data or "").strip()
    if time_zone and not form.time_zone.errors:
        try:
            periods.zone(time_zone)
        except InvalidInput:
            form.time_zone.errors = ["Enter a time zone name such as Europe/Paris or America/New_York."]
    thresholds = _thresholds(form.alert_thresholds)
    cap = _spend_cap(form.spend_cap, account.currency)
    if form.errors or any(f.errors for f in (form.time_zone, form.alert_thresholds, form.spend_cap)):
        return _usage_page(form, 400)
    try:
        settings.update(account, {"time_zone": time_zone, "alert_thresholds": thresholds,
                                  "spend_cap": cap})
    except TallyError as exc:
        uow.rollback()
        getattr(form, exc.param or "time_zone").errors = [exc.message]
        return _usage_page(form, 400)
    flash("Settings saved.")
    return redirect(url_for("pages.usage"), code=303)
