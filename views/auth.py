"""Log in (throttled), sign up, log out, and change the password."""

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
from flask_login import current_user, login_required, login_user, logout_user

from extensions import limiter
from services import uow
from services.errors import TallyError
from services.identity import accounts
from views.forms import LoginForm, PasswordChangeForm, SignupForm
from views.session import same_site_path, sensitive_action, true_user

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
# client IP and per email address; over the limit, the form says so, with a 429.


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
               deduct_when=_failed, on_breach=_throttled)
@limiter.limit(_login_limit, key_func=_login_email, scope="login-email", methods=["POST"],
               deduct_when=_failed, on_breach=_throttled)
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
            return redirect(_safe_next(request.args.get("next")), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = SignupForm()
    if form.validate_on_submit():
        try:
            result = accounts.sign_up(email=form.email.data, password=form.password.data,
                                      name=form.name.data)
        except TallyError as exc:
            uow.rollback()  # a refusal changes nothing
            field = getattr(form, exc.param or "", None)
            if field is not None:
                field.errors = [*field.errors, exc.message]
            else:
                form.form_errors.append(exc.message)
        else:
            _start_session(result.user)
            # The key is shown in this response only; it is never stored in clear.
            return render_template("auth/welcome.html", api_key=result.api_key,
                                   account=result.account)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/signup.html", form=form), status


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
    return render_template("auth/account.html", form=PasswordChangeForm())


@bp.post("/account/password")
@login_required
@sensitive_action("password.change")
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
            _start_session(user)
            flash("Password changed. Every other session has been logged out.")
            return redirect(url_for("auth.account"), code=303)
    return render_template("auth/account.html", form=form), 400
