"""The staff console's forms: every action names a reason for the audit log."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from models import Account
from services.billing import plans
from services.errors import TallyError
from services.staff import console as staff
from services.staff import rules
from services.usage import rating

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


def action_forms(account: Account) -> dict[str, FlaskForm]:
    forms = {name: cls(prefix=f"{account.id}-{name}") for name, cls in ACTION_FORMS.items()}
    plan_choices(forms["plan"], account)
    price_plan_choices(forms["pricing"], account)
    return forms


def plan_choices(form: PlanForm, account: Account) -> None:
    form.plan.choices = [(p.name, p.display_name) for p in plans.all_plans()]
    if not form.is_submitted():
        form.plan.data = account.tier


def price_plan_choices(form: PricePlanForm, account: Account) -> None:
    """Price plans in the account's currency; the empty choice takes usage pricing off."""
    form.price_plan.choices = [("", "No usage pricing")] + [
        (p.id, f"{p.name} ({p.id})") for p in rating.all_price_plans()
        if p.currency == account.currency]
    if not form.is_submitted():
        form.price_plan.data = account.price_plan_id or ""


def field_error(form: FlaskForm, exc: TallyError) -> None:
    field = getattr(form, exc.param or "", None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


def end_of_day(day: date | None) -> datetime | None:
    """A date picked in the form means "until the end of that day", UTC."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
