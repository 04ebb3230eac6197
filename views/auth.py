"""Log in, sign up, log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from services import accounts
from services.errors import TallyError
from views.forms import LoginForm, SignupForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.dashboard")


def _start_session(user) -> None:
    session.clear()  # a fresh session at login: nothing carried over from before
    login_user(user)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("pages.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data)
        except TallyError as exc:
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
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)
