"""The support staff console under /staff: customer search, the customer page and its
actions, "view as customer", the audit log (and its CSV export), the webhook inbox.

Staff role only; anyone else gets 404. Every action names a reason and is audited by
its service, with the staff member as the true user.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import partial, wraps
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from extensions import db
from models import Account, Customer, User
from services import uow
from services.billing import plans, webhooks
from services.billing.stripe_objects import API_VERSION
from services.errors import InvalidInput, TallyError
from services.ledger import grants
from services.money import format_money, parse_major, parse_signed_major
from services.pagination import parse_limit
from services.staff import audit, impersonation, rules
from services.staff import console as staff
from services.usage import rating
from views.htmx import render_page
from views.session import (
    actor,
    begin_impersonation,
    current_impersonation,
    end_impersonation,
    true_user,
)

bp = Blueprint("staff", __name__, url_prefix="/staff")

REASON_HINT = "Why? It goes into the audit log."


def staff_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Staff role required (the true user, so it works while viewing as a customer); 404 otherwise."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = true_user()
        if user is None or not user.is_staff:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


# Forms --------------------------------------------------------------------------------


def _reason() -> TextAreaField:
    return TextAreaField("Reason", validators=[
        DataRequired("Give a reason: it goes into the audit log."), Length(max=500)])


class ImpersonateForm(FlaskForm):
    reason = _reason()


def _note() -> StringField:
    return StringField("Note for the customer (optional)", validators=[
        Optional(), Length(max=rules.MAX_NOTE_LENGTH)])


class GrantForm(FlaskForm):
    amount = StringField("Amount", validators=[DataRequired("Enter an amount, e.g. 25.00.")])
    expires_on = DateField("Expires after (optional)", validators=[Optional()])
    reason = _reason()
    note = _note()


class AdjustForm(FlaskForm):
    amount = StringField("Amount (negative to debit)",
                         validators=[DataRequired("Enter an amount, e.g. -5.00 or 5.00.")])
    reason = _reason()
    note = _note()


class PlanForm(FlaskForm):
    plan = SelectField("New plan", validators=[DataRequired()])
    reason = _reason()


class PricePlanForm(FlaskForm):
    price_plan = SelectField("Price plan", validate_choice=False)
    reason = _reason()


class GraceForm(FlaskForm):
    days = IntegerField("Extend by (days)", default=7, validators=[
        InputRequired("Enter a number of days."), NumberRange(1, staff.MAX_GRACE_EXTENSION_DAYS)])
    reason = _reason()


class ResendForm(FlaskForm):
    reason = _reason()


class ConfirmForm(FlaskForm):
    """Just the CSRF token: for buttons such as Replay and Stop."""


ACTION_FORMS: dict[str, type[FlaskForm]] = {
    "grant": GrantForm, "adjust": AdjustForm, "plan": PlanForm, "grace": GraceForm,
    "pricing": PricePlanForm,
}


def _action_forms(account: Account) -> dict[str, FlaskForm]:
    forms = {name: cls(prefix=f"{account.id}-{name}") for name, cls in ACTION_FORMS.items()}
    _plan_choices(forms["plan"], account)
    _price_plan_choices(forms["pricing"], account)
    return forms


def _plan_choices(form: PlanForm, account: Account) -> None:
    form.plan.choices = [(p.name, p.display_name) for p in plans.all_plans()]
    if not form.is_submitted():
        form.plan.data = account.tier


def _price_plan_choices(form: PricePlanForm, account: Account) -> None:
    """Price plans in the account's currency; the empty choice takes usage pricing off."""
    form.price_plan.choices = [("", "No usage pricing")] + [
        (p.id, f"{p.name} ({p.id})") for p in rating.all_price_plans()
        if p.currency == account.currency]
    if not form.is_submitted():
        form.price_plan.data = account.price_plan_id or ""


def _field_error(form: FlaskForm, exc: TallyError) -> None:
    field = getattr(form, exc.param or "", None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


# Search ------------------------------------------------------------------------------


@bp.get("/")
@staff_page
def index():
    q = request.args.get("q", "")
    return render_page("staff/index.html", blocks=("results",), q=q,
                       customers=staff.search_customers(q))


# The customer page and its actions ------------------------------------------------------


def _customer_page(customer_id: str, *, bound: dict[str, dict[str, FlaskForm]] | None = None,
                   user_forms: dict[str, FlaskForm] | None = None, status: int = 200):
    view = staff.overview(customer_id)
    forms = {o.account.id: _action_forms(o.account) for o in view.accounts}
    for account_id, submitted in (bound or {}).items():
        forms.setdefault(account_id, {}).update(submitted)
    people = {u.id: ImpersonateForm(prefix=f"{u.id}-imp") for u in view.users}
    people.update(user_forms or {})
    return render_page("staff/customer.html", blocks=("audit_trail",), view=view, forms=forms,
                       people=people, resend=ResendForm(prefix="resend"),
                       minutes=current_app.config["IMPERSONATION_MINUTES"],
                       running=current_impersonation(),
                       status=status)


@bp.get("/customers/<customer_id>")
@staff_page
def customer(customer_id: str):
    if request.headers.get("HX-Request") != "true":
        staff.record_view(actor(), staff.get_customer(customer_id))
    return _customer_page(customer_id)


def _account_action(account_id: str, name: str, run: Callable[[FlaskForm, Account], str]):
    """Validate the action's form, run it, flash what happened; the page again on errors."""
    account = staff.get_account(account_id)
    form = ACTION_FORMS[name](prefix=f"{account.id}-{name}")
    if name == "plan":
        _plan_choices(form, account)
    if name == "pricing":
        _price_plan_choices(form, account)
    if form.validate_on_submit():
        try:
            message = run(form, account)
        except TallyError as exc:
            uow.rollback()
            _field_error(form, exc)
        else:
            flash(message)
            return redirect(url_for("staff.customer", customer_id=account.customer_id,
                                    _anchor=f"account-{account.id}"), code=303)
    return _customer_page(account.customer_id, bound={account.id: {name: form}}, status=400)


def _end_of_day(day: date | None) -> datetime | None:
    """A date picked in the form means "until the end of that day", UTC."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


@bp.post("/accounts/<account_id>/grant")
@staff_page
def grant(account_id: str):
    def run(form: GrantForm, account: Account) -> str:
        amount = parse_major(form.amount.data, account.currency)
        result = grants.grant(actor(), account.id, amount, form.reason.data,
                              note=form.note.data, expires_at=_end_of_day(form.expires_on.data))
        expiry = (f", expiring after {form.expires_on.data:%b %-d, %Y}"
                  if form.expires_on.data else "")
        return (f"Granted {_money(amount, account)} to {account.name}{expiry}. "
                f"Balance: {_money(result.balance, account)}.")

    return _account_action(account_id, "grant", run)


@bp.post("/accounts/<account_id>/adjust")
@staff_page
def adjust(account_id: str):
    def run(form: AdjustForm, account: Account) -> str:
        amount = parse_signed_major(form.amount.data, account.currency)
        result = staff.adjust_balance(actor(), account.id, amount, form.reason.data,
                                      note=form.note.data)
        return (f"Adjusted {account.name} by {_money(result.amount, account)}. "
                f"Balance: {_money(result.balance, account)}.")

    return _account_action(account_id, "adjust", run)


@bp.post("/accounts/<account_id>/plan")
@staff_page
def change_plan(account_id: str):
    def run(form: PlanForm, account: Account) -> str:
        changed = staff.change_plan(actor(), account.id, form.plan.data, form.reason.data)
        return f"{changed.name} is on {plans.plan_for(changed.tier).display_name} now."

    return _account_action(account_id, "plan", run)


@bp.post("/accounts/<account_id>/price-plan")
@staff_page
def assign_price_plan(account_id: str):
    def run(form: PricePlanForm, account: Account) -> str:
        changed = rating.assign(actor(), account, form.price_plan.data or None,
                                rules.check_reason(form.reason.data))
        if changed.price_plan_id is None:
            return f"{changed.name} has no usage pricing now."
        return f"{changed.name} is on the price plan {rating.get_price_plan(changed.price_plan_id).name} now."

    return _account_action(account_id, "pricing", run)


@bp.post("/accounts/<account_id>/grace")
@staff_page
def extend_grace(account_id: str):
    def run(form: GraceForm, account: Account) -> str:
        changed = staff.extend_grace(actor(), account.id, form.days.data, form.reason.data)
        assert changed.grace_period_ends_at is not None
        return f"The grace period now ends {changed.grace_period_ends_at:%b %-d, %Y %H:%M} UTC."

    return _account_action(account_id, "grace", run)


@bp.post("/accounts/<account_id>/invoices/<invoice_id>/resend")
@staff_page
def resend_invoice(account_id: str, invoice_id: str):
    account = staff.get_account(account_id)
    form = ResendForm(prefix="resend")
    error = "Give a reason: it goes into the audit log."
    if form.validate_on_submit():
        try:
            to = staff.resend_invoice(actor(), account.id, invoice_id, form.reason.data)
        except TallyError as exc:
            uow.rollback()  # a refusal changes nothing
            error = exc.message
        else:
            flash(f"Invoice sent to {to}.")
            return redirect(url_for("staff.customer", customer_id=account.customer_id), code=303)
    flash(error, "error")
    return _customer_page(account.customer_id, status=400)


def _money(amount: int, account: Account) -> str:
    return format_money(amount, account.currency)


# View as customer -----------------------------------------------------------------------


@bp.post("/users/<user_id>/impersonate")
@staff_page
def impersonate(user_id: str):
    user = db.session.get(User, user_id)
    if user is None or user.customer_id is None:
        abort(404)
    form = ImpersonateForm(prefix=f"{user.id}-imp")
    if form.validate_on_submit():
        running = current_impersonation()
        if running is not None:  # one view at a time: end the earlier one first
            impersonation.end(running.id, actor())
            end_impersonation()
        try:
            started = impersonation.start(actor(), user.id, form.reason.data,
                                          minutes=current_app.config["IMPERSONATION_MINUTES"])
        except TallyError as exc:
            uow.rollback()
            _field_error(form, exc)
        else:
            begin_impersonation(started.impersonation.id)
            return redirect(url_for("pages.dashboard"), code=303)
    return _customer_page(user.customer_id, user_forms={user.id: form}, status=400)


@bp.post("/impersonation/stop")
@staff_page
def stop_impersonation():
    ConfirmForm().validate_on_submit()  # CSRF is checked for every POST by CSRFProtect
    running = current_impersonation()
    impersonation_id = end_impersonation()
    if running is None:
        return redirect(url_for("staff.index"), code=303)
    impersonation.end(impersonation_id or running.id, actor())
    flash("You stopped viewing as the customer.")
    return redirect(url_for("staff.customer", customer_id=running.customer_id), code=303)


# Audit log ------------------------------------------------------------------------------


def _audit_filters() -> audit.Filters:
    args = request.args

    def day(name: str) -> date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be a date such as 2025-01-31.", param=name) from None

    since, until = day("from"), day("to")
    return audit.Filters(
        staff_id=args.get("staff") or None,
        customer_id=(args.get("customer") or "").strip() or None,
        account_id=(args.get("account") or "").strip() or None,
        action=args.get("action") or None,
        since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
        until=_end_of_day(until),
    )


def _cursor(name: str) -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() else None


@bp.get("/audit")
@staff_page
def audit_log():
    try:
        filters = _audit_filters()
        error = None
    except InvalidInput as exc:
        filters, error = audit.Filters(), exc.message
    page = audit.page(filters, before=_cursor("before"), after=_cursor("after"))
    args = {k: v for k, v in request.args.items() if k not in ("before", "after") and v}
    return render_page("staff/audit.html", blocks=("audit_results",), page=page, args=args,
                       error=error, actions=audit.actions(), staff_users=audit.staff_users())


@bp.get("/audit.csv")
@staff_page
def audit_csv():
    filters = _audit_filters()
    # The filters are kept in meta; the row names the customer only when one exists (the
    # column is a foreign key, and the filter is free text such as "cust_nope" or "%").
    named = filters.customer_id and db.session.get(Customer, filters.customer_id)
    audit.record(actor(), "audit.export", customer_id=named.id if named else None,
                     meta={k: v for k, v in request.args.items() if v})
    name = f"tally-audit-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"
    return Response(stream_with_context(audit.csv_lines(filters)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# Webhook inbox --------------------------------------------------------------------------


@bp.get("/webhooks")
@staff_page
def webhooks_index():
    status_filter = request.args.get("status", "all")
    if status_filter not in staff.WEBHOOK_FILTERS:
        status_filter = "all"
    page = staff.webhook_events(status_filter,
                                limit=parse_limit(request.args.get("limit") or "50"),
                                starting_after=request.args.get("starting_after") or None)
    # Not `status=`: render_page's `status` is the HTTP status of the answer.
    return render_page("staff/webhooks.html", blocks=("events",), page=page,
                       status_filter=status_filter, api_version=API_VERSION)


@bp.get("/webhooks/<event_id>")
@staff_page
def webhook(event_id: str):
    row = staff.get_webhook_event(event_id)
    try:
        payload = json.dumps(json.loads(row.payload), indent=2, sort_keys=True)
    except ValueError:
        payload = row.payload
    return render_page("staff/webhook.html", event=row, payload=payload, form=ConfirmForm(),
                       api_version=API_VERSION)


@bp.post("/webhooks/<event_id>/replay")
@staff_page
def replay_webhook(event_id: str):
    ConfirmForm().validate_on_submit()
    before = staff.webhook_state(event_id)
    try:  # the handler's work is one unit; a failure is kept on the event, then shown here
        outcome = uow.attempt(partial(webhooks.process, event_id),
                              partial(webhooks.record_failure, event_id))
    except TallyError as exc:
        outcome = webhooks.Outcome(event_id, before["type"], "error", exc.message)
    staff.record_replay(actor(), event_id, before, outcome)
    if outcome.status == "error":
        flash(f"Replay failed: {outcome.detail}", "error")
    else:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        flash({"duplicate": "Already processed: nothing to do, nothing changed.",
               "processed": f"Processed{detail}.",
               "ignored": f"Stored; Tally has no handler for {outcome.type}.",
               "refused": f"Refused{detail}."}.get(outcome.status, outcome.status))
    return redirect(url_for("staff.webhook", event_id=event_id), code=303)
