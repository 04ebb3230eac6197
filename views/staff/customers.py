"""Customer search, the customer page and the actions staff take on an account."""

from __future__ import annotations

from collections.abc import Callable

from flask import (
    current_app,
    flash,
    redirect,
    request,
    url_for,
)
from flask_wtf import FlaskForm

from models import Account
from services import uow
from services.billing import plans
from services.errors import TallyError
from services.ledger import grants, recharge
from services.money import format_money, parse_major, parse_signed_major
from services.notifications import outbox
from services.staff import console as staff
from services.staff import rules, search
from services.usage import rating
from views.htmx import render_page
from views.session import (
    actor,
    current_impersonation,
)
from views.staff.base import bp, staff_page
from views.staff.forms import (
    ACTION_FORMS,
    AdjustForm,
    GraceForm,
    GrantForm,
    ImpersonateForm,
    PlanForm,
    PricePlanForm,
    ResendForm,
    action_forms,
    end_of_day,
    field_error,
    plan_choices,
    price_plan_choices,
)

# Search ------------------------------------------------------------------------------


@bp.get("/")
@staff_page
def index():
    q = request.args.get("q", "")
    return render_page("staff/index.html", blocks=("results",), q=q,
                       customers=search.search_customers(q))


# The customer page and its actions ------------------------------------------------------


def customer_page(customer_id: str, *, bound: dict[str, dict[str, FlaskForm]] | None = None,
                   user_forms: dict[str, FlaskForm] | None = None, status: int = 200):
    view = staff.overview(customer_id)
    forms = {o.account.id: action_forms(o.account) for o in view.accounts}
    for account_id, submitted in (bound or {}).items():
        forms.setdefault(account_id, {}).update(submitted)
    people = {u.id: ImpersonateForm(prefix=f"{u.id}-imp") for u in view.users}
    people.update(user_forms or {})
    return render_page("staff/customer.html", blocks=("audit_trail",), view=view, forms=forms,
                       people=people, resend=ResendForm(prefix="resend"),
                       outbox=outbox.for_customer(customer_id, limit=30),
                       recharges={o.account.id: (recharge.settings_of(o.account.id),
                                                 recharge.attempts(o.account.id, limit=10))
                                  for o in view.accounts},
                       minutes=current_app.config["IMPERSONATION_MINUTES"],
                       running=current_impersonation(),
                       status=status)


@bp.get("/customers/<customer_id>")
@staff_page
def customer(customer_id: str):
    if request.headers.get("HX-Request") != "true":
        staff.record_view(actor(), staff.get_customer(customer_id))
    return customer_page(customer_id)


def _account_action(account_id: str, name: str, run: Callable[[FlaskForm, Account], str]):
    """Validate the action's form, run it, flash what happened; the page again on errors."""
    account = staff.get_account(account_id)
    form = ACTION_FORMS[name](prefix=f"{account.id}-{name}")
    if name == "plan":
        plan_choices(form, account)
    if name == "pricing":
        price_plan_choices(form, account)
    if form.validate_on_submit():
        try:
            message = run(form, account)
        except TallyError as exc:
            uow.rollback()
            field_error(form, exc)
        else:
            flash(message)
            return redirect(url_for("staff.customer", customer_id=account.customer_id,
                                    _anchor=f"account-{account.id}"), code=303)
    return customer_page(account.customer_id, bound={account.id: {name: form}}, status=400)


@bp.post("/accounts/<account_id>/grant")
@staff_page
def grant(account_id: str):
    def run(form: GrantForm, account: Account) -> str:
        amount = parse_major(form.amount.data, account.currency)
        result = grants.grant(actor(), account.id, amount, form.reason.data,
                              note=form.note.data, expires_at=end_of_day(form.expires_on.data))
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
    return customer_page(account.customer_id, status=400)


def _money(amount: int, account: Account) -> str:
    return format_money(amount, account.currency)
