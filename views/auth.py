"""Log in (throttled), sign up (by email), log out, and change the password."""

from __future__ import annotations

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
from flask_login import current_user, login_required, logout_user

from extensions import limiter
from services import uow
from services.errors import TallyError
from services.identity import accounts, recovery, sessions
from services.identity import signup as signup_service
from services.notifications import email_configured
from views import devices
from views import two_factor as two_factor_views
from views.account import render_account
from views.forms import (
    ConfirmSignupForm,
    ForgotPasswordForm,
    LoginForm,
    PasswordChangeForm,
    ResetPasswordForm,
    SignupForm,
)
from views.session import (
    SESSION_ID_KEY,
    audit_as,
    current_impersonation,
    same_site_path,
    start_session,
    true_user,
)

bp = Blueprint("auth", __name__)

THROTTLED = "Too many login attempts. Wait a minute, then try again."


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if target and target.startswith("/") and same_site_path(target):
        return target
    return url_for("pages.dashboard")


def _start_session(user) -> None:
    start_session(user)


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
            return two_factor_views.after_password(user, _safe_next(request.args.get("next")))
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
    """Ends this session (a copied cookie of it stops working too); the person's other
    sessions go on ("Log out everywhere" on the Account page ends them all)."""
    user = true_user()
    if user is not None and session.get(SESSION_ID_KEY):
        sessions.end(user, session[SESSION_ID_KEY])
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)


# A forgotten password: the same answer whatever the email; a link by email when it has a
# login (services/identity/recovery.py). Throttled per client IP and per email address.

RESET_THROTTLED = "Too many reset requests. Wait a while, then try again."


def _reset_limit() -> str:
    return str(current_app.config["RESET_RATE_LIMIT"])


def _reset_email() -> str:
    return "reset-email:" + (request.form.get("email") or "").strip().lower()


def _reset_throttled(_limit: RequestLimit):
    return make_response(render_template("auth/forgot.html", form=ForgotPasswordForm(),
                                         error=RESET_THROTTLED), 429)


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_reset_limit, key_func=get_remote_address, scope="reset-ip", methods=["POST"],
               on_breach=_reset_throttled)
@limiter.limit(_reset_limit, key_func=_reset_email, scope="reset-email", methods=["POST"],
               on_breach=_reset_throttled)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        recovery.request_reset(form.email.data, lambda token: url_for(
            "auth.reset_password", token=token, _external=True))
        return render_template("auth/forgot.html", form=form, sent=True, outbox=_demo_outbox())
    return render_template("auth/forgot.html", form=form), 400 if request.method == "POST" else 200


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password():
    """The link in the reset email: a form for the new password (GET changes nothing)."""
    token = request.values.get("token", "")
    form = ResetPasswordForm()
    try:
        user = recovery.read_reset(token)
        if form.validate_on_submit():
            recovery.reset_password(token, form.new_password.data)
            logout_user()
            session.clear()
            flash("Your password is changed, and every session of yours was logged out. "
                  "Log in with the new password.", "info")
            return redirect(url_for("auth.login"), code=303)
    except TallyError as exc:
        uow.rollback()  # a refusal changes nothing
        if exc.param != "new_password":
            return render_template("auth/reset.html", form=form, token=token, error=exc,
                                   user=None), exc.status
        form.new_password.errors = [exc.message]
    status = 400 if request.method == "POST" else 200
    return render_template("auth/reset.html", form=form, token=token, user=user), status


@bp.get("/account")
@login_required
def account():
    return render_account()


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
    return render_account(400, form=form)
