"""WTForms for the pages (flask-wtf adds the CSRF token to each)."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email.")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")])


class SignupForm(FlaskForm):
    name = StringField("Company or project", validators=[
        DataRequired("Enter your company or project name."), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired("Enter your email.")])
    password = PasswordField("Password", validators=[DataRequired("Choose a password.")])


class ConfirmSignupForm(FlaskForm):
    """Just the CSRF token: the button that finishes a sign-up from its email link."""


class TopUpForm(FlaskForm):
    """The amount step of a top-up; the card is collected by Stripe.js."""

    amount = StringField("Amount", validators=[DataRequired("Choose or enter an amount.")])


class UsageSettingsForm(FlaskForm):
    time_zone = StringField("Time zone", validators=[DataRequired("Enter a time zone.")])
    alert_thresholds = StringField("Alert thresholds (%)")
    spend_cap = StringField("Monthly spend cap")


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[
        DataRequired("Enter your current password.")])
    new_password = PasswordField("New password", validators=[DataRequired("Choose a new password.")])
    confirm_password = PasswordField("Confirm new password", validators=[
        DataRequired("Type the new password again."),
        EqualTo("new_password", "This does not match the new password. Type it again.")])


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email.")])


class ResetPasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[DataRequired("Choose a new password.")])
    confirm_password = PasswordField("Confirm new password", validators=[
        DataRequired("Type the new password again."),
        EqualTo("new_password", "This does not match the new password. Type it again.")])


class EmailChangeForm(FlaskForm):
    email = EmailField("New email", validators=[DataRequired("Enter the new email.")])
    password = PasswordField("Your password", validators=[DataRequired("Enter your password.")])


class ButtonForm(FlaskForm):
    """Just the CSRF token: a form that is one button."""


ROLE_CHOICES = ["viewer", "developer", "billing", "admin", "owner"]


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter their email.")])
    role = SelectField("Role", choices=ROLE_CHOICES, default="developer")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class AcceptInvitationForm(FlaskForm):
    """Accepting an invitation: a name and password when it creates a login."""

    name = StringField("Your name", validators=[Length(max=200)])
    password = PasswordField("Choose a password")


class TwoFactorForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired("Type the code from your app.")])


class PasswordOnlyForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired("Enter your password.")])
