"""Two-factor authentication in the browser: the login step after the password, turning
it on (QR code, then a code, then the recovery codes, shown once) and off, new recovery
codes, an owner requiring it of every member, and sending a person who must use it but
has not turned it on to the setup page (services/identity/two_factor.py)."""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import RequestLimit
from flask_login import current_user, login_required

from extensions import limiter
from models import User
from services import uow
from services.errors import TallyError
from services.identity import accounts, members, two_factor
from views import devices
from views.forms import ButtonForm, PasswordOnlyForm, TwoFactorForm
from views.membership import current_account, customer_page, member_actor
from views.session import MUST_ENROLL_KEY, audit_as, start_session

bp = Blueprint("two_factor", __name__)

PENDING_KEY = "2fa_pending"  # (user id, session version, when, where to go next)
PENDING_SECONDS = 600
THROTTLED = "Too many codes tried. Wait a minute, then try again."


def after_password(user: User, next_url: str):
    """The password was right: log in, or ask for the second factor first."""
    if not user.two_factor_enabled:
        start_session(user)
        return devices.remember(redirect(next_url, code=303), user)
    session.clear()  # not logged in until the code is right
    session[PENDING_KEY] = [user.id, user.session_version or 0, int(time.time()), next_url]
    return redirect(url_for("two_factor.login_code"), code=303)


def _pending_user() -> tuple[User | None, str]:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, list) or len(pending) != 4:
        return None, ""
    user_id, version, at, next_url = pending
    user = accounts.get_user(str(user_id))
    if user is None or (user.session_version or 0) != version or time.time() - at > PENDING_SECONDS:
        return None, ""
    return user, str(next_url)


def _code_key() -> str:
    pending = session.get(PENDING_KEY)
    return "2fa:" + (str(pending[0]) if isinstance(pending, list) and pending else "none")


def _throttled(_limit: RequestLimit):
    return make_response(render_template("auth/two_factor_login.html", form=TwoFactorForm(),
                                         error=THROTTLED), 429)


def _code_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


@bp.route("/login/two-factor", methods=["GET", "POST"])
@limiter.limit(_code_limit, key_func=_code_key, scope="login-2fa", methods=["POST"],
               deduct_when=lambda response: response.status_code != 303, on_breach=_throttled)
def login_code():
    """The second step of logging in: a code from the app, or a recovery code."""
    user, next_url = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        flash("Log in again: the code step timed out.", "info")
        return redirect(url_for("auth.login"), code=303)
    form = TwoFactorForm()
    error = None
    if form.validate_on_submit():
        if two_factor.verify(user, form.code.data):
            start_session(user)
            return devices.remember(redirect(next_url, code=303), user)
        error = "That code is not right. Type the 6 digits your app shows now, or a recovery code."
    status = 400 if request.method == "POST" else 200
    return render_template("auth/two_factor_login.html", form=form, error=error), status


# On the Account page ---------------------------------------------------------------------


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
@audit_as("two_factor.enable")
def setup():
    """GET: the QR code and secret of a new enrollment; POST: the code that turns it on."""
    user = current_user._get_current_object()
    if user.two_factor_enabled:
        return redirect(url_for("auth.account"), code=303)
    form = TwoFactorForm()
    if form.validate_on_submit():
        try:
            codes = two_factor.enable(user, form.code.data)
        except TallyError as exc:
            uow.rollback()
            form.code.errors = [exc.message]
        else:
            session.pop(MUST_ENROLL_KEY, None)
            return render_template("auth/recovery_codes.html", codes=codes, first=True)
    enrollment = two_factor.enrollment(user)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/two_factor_setup.html", form=form, enrollment=enrollment,
                           required=session.get(MUST_ENROLL_KEY)), status


@bp.post("/account/two-factor/recovery-codes")
@login_required
@audit_as("two_factor.recovery_codes")
def recovery_codes():
    """New recovery codes (the old ones stop working); the password is asked again."""
    user = current_user._get_current_object()
    form = PasswordOnlyForm()
    if form.validate_on_submit() and user.two_factor_enabled:
        try:
            accounts.check_password(user, form.password.data)
        except TallyError as exc:
            uow.rollback()
            flash(exc.message, "error")
            return redirect(url_for("auth.account"), code=303)
        return render_template("auth/recovery_codes.html",
                               codes=two_factor.new_recovery_codes(user), first=False)
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/two-factor/disable")
@login_required
@audit_as("two_factor.disable")
def disable():
    form = PasswordOnlyForm()
    if form.validate_on_submit():
        try:
            two_factor.disable(current_user._get_current_object(), form.password.data)
        except TallyError as exc:
            uow.rollback()
            flash(exc.message, "error")
        else:
            flash("Two-factor authentication is off.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/members/two-factor")
@customer_page(members.SECURITY)
@audit_as("security.two_factor_required")
def require_for_members():
    """An owner requires two-factor authentication of every member (or stops)."""
    if ButtonForm().validate_on_submit():
        on = request.form.get("required") == "on"
        two_factor.set_required(member_actor(), current_user._get_current_object(), g.member_role,
                                current_account().customer, on)
        flash("Every member must now use two-factor authentication." if on else
              "Two-factor authentication is now each member's choice.")
    return redirect(url_for("members_page.index"), code=303)


ENROLL_EXEMPT = frozenset({"two_factor.setup", "auth.logout", "static", "favicon",
                           "account.verify_email"})


def _guard_enrollment():
    """A person who must use two-factor but has not turned it on does that first."""
    if not session.get(MUST_ENROLL_KEY) or request.endpoint in ENROLL_EXEMPT:
        return None
    if not current_user.is_authenticated:
        session.pop(MUST_ENROLL_KEY, None)
        return None
    flash("Your account requires two-factor authentication: turn it on to continue.", "info")
    return redirect(url_for("two_factor.setup"), code=303)


def init_app(app: Flask) -> None:
    app.before_request(_guard_enrollment)
