"""Log in (throttled), sign up (by email), log out, and change the password."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user

from extensions import limiter
from services import uow
from services.errors import TallyError
from services.identity import accounts
from services.identity import signup as signup_service
from services.notifications import email_configured, notices
from views import devices
from views import wallets as wallet_views
from views.forms import ConfirmSignupForm, LoginForm, PasswordChangeForm, SignupForm
from views.session import audit_as, current_impersonation, same_site_path, true_user

bp = Blueprint("auth", __name__)

THROTTLED = "Too many login attempts. Wait a minute, then try again."


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if target and target.startswith("/") and same_site_path(target):
        return target
    return url_for("pages.dashboard")


def _start_session(user) -> None:
    session.clear()  # a fresh session at login: nothing carried over from before
    login_user(user)


# Login throttling: failed attempts (any answer but the redirect of a success) count per
# client IP and per email address, so guessing stays slow however many addresses guess; a
# browser the person has logged in from before (views/devices.py) is spared those two,
# which an attacker elsewhere can fill, and counts per device instead. Over a limit, the
# form says so, with a 429.


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _login_email() -> str:
    return "login-email:" + (request.form.get("email") or "").strip().lower()


def _throttled(_limit: RequestLimit):
    return make_response(render_template("auth/login.html", form=LoginForm(), error=THROTTLED), 429)


def _failed(response) -> bool:
    return response.status_code != 303


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=get_remote_address, scope="login-ip", methods=["POST"],
               deduct_when=_failed, on_breach=_throttled, exempt_when=devices.known)
@limiter.limit(_login_limit, key_func=_login_email, scope="login-email", methods=["POST"],
               deduct_when=_failed, on_breach=_throttled, exempt_when=devices.known)
@limiter.limit(_login_limit, key_func=devices.device_key, scope="login-device", methods=["POST"],
               deduct_when=_failed, on_breach=_throttled, exempt_when=devices.unknown)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("pages.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data)
        except TallyError as exc:
            uow.rollback()  # a refusal changes nothing
            error = exc.message
        else:
            _start_session(user)
            return devices.remember(redirect(_safe_next(request.args.get("next")), code=303), user)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, error=error), status


# Sign-up: every valid form gets the same answer ("check your email") and an email; the
# account is created from the link in it (services/identity/signup.py).

SIGNUP_THROTTLED = "Too many sign-ups from your network. Try again later."


def _signup_limit() -> str:
    return str(current_app.config["SIGNUP_RATE_LIMIT"])


def _signup_throttled(_limit: RequestLimit):
    return make_response(render_template("auth/signup.html", form=SignupForm(),
                                         error=SIGNUP_THROTTLED, available=email_configured()), 429)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_signup_limit, key_func=get_remote_address, scope="signup-ip", methods=["POST"],
               on_breach=_signup_throttled)
def signup():
    form = SignupForm()
    status, error = 200, None
    if form.validate_on_submit():
        try:
            email = signup_service.request(
                email=form.email.data, password=form.password.data, name=form.name.data,
                confirm_url=lambda token: url_for("auth.signup_confirm", token=token, _external=True),
                login_url=url_for("auth.login", _external=True))
        except TallyError as exc:
            uow.rollback()  # a refusal changes nothing
            field = getattr(form, exc.param or "", None)
            if field is not None:
                field.errors = [*field.errors, exc.message]
            else:
                error = exc.message
            status = exc.status if field is None else 400
        else:
            return render_template("auth/check_email.html", email=email, outbox=_demo_outbox())
    elif request.method == "POST":
        status = 400
    return render_template("auth/signup.html", form=form, error=error,
                           available=email_configured()), status


def _demo_outbox() -> str | None:
    """Where a demo Tally (SMTP_URL=file://...) writes its email, to say so on the page."""
    url = str(current_app.config.get("SMTP_URL") or "")
    return url.removeprefix("file://") if url.startswith("file://") else None


@bp.route("/signup/confirm", methods=["GET", "POST"])
def signup_confirm():
    """The link in the sign-up email: a page with one button (GET changes nothing, so a
    mail scanner opening the link creates nothing); the button creates the account, logs
    the person in and shows the first API key once."""
    token = request.values.get("token", "")
    form = ConfirmSignupForm()
    try:
        pending = signup_service.read(token)
        if form.validate_on_submit():
            result = signup_service.complete(token)
        else:
            return render_template("auth/confirm_signup.html", form=form, token=token,
                                   pending=pending), 400 if request.method == "POST" else 200
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        return render_template("auth/confirm_signup.html", form=form, token=token, pending=None,
                               error=exc, taken=exc.code == "email_taken"), exc.status
    _start_session(result.user)
    # The key is shown in this response only; it is never stored in clear.
    return devices.remember(make_response(render_template(
        "auth/welcome.html", api_key=result.api_key, account=result.account)), result.user)


@bp.post("/logout")
def logout():
    """Ends the session here and every other session of the person (a copied cookie
    stops working too)."""
    user = true_user()
    if user is not None:
        accounts.end_sessions(user)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


@bp.get("/account")
@login_required
def account():
    return render_template("auth/account.html", form=PasswordChangeForm(),
                           wallets=wallet_views.account_wallets(),
                           wallet_domain=current_app.config["WALLET_AUTH_DOMAIN"],
                           **_notifications())


def _notifications() -> dict[str, Any]:
    """A customer's notification preferences, for the Account page (staff have none)."""
    user = current_user._get_current_object()
    if user.is_staff or user.customer is None or not user.customer.accounts:
        return {}
    return {"notify_account": accounts.primary_account(user), "notice_kinds": notices.KINDS,
            "always_sent": notices.ALWAYS}


@bp.post("/account/password")
@login_required
@audit_as("password.change")
def change_password():
    """A new password ends every other session; this one continues, renewed."""
    form = PasswordChangeForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            accounts.change_password(user, form.current_password.data, form.new_password.data)
        except TallyError as exc:
            uow.rollback()  # a refusal changes nothing
            getattr(form, exc.param or "current_password").errors = [exc.message]
        else:
            if current_impersonation() is None:  # staff keep their own session, never the customer's
                _start_session(user)
            flash("Password changed. Every other session has been logged out.")
            return redirect(url_for("auth.account"), code=303)
    return render_template("auth/account.html", form=form, wallets=wallet_views.account_wallets(),
                           wallet_domain=current_app.config["WALLET_AUTH_DOMAIN"],
                           **_notifications()), 400
