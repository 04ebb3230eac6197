"""The Account page's parts beyond the password: sessions (list, end one, end all), the
email (verify, change) and which customer the person works in (the header's switcher)."""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user

from services import uow
from services.errors import NotFound, TallyError
from services.identity import accounts, members, recovery, sessions, wallets
from services.notifications import notices
from views.forms import ButtonForm, EmailChangeForm, PasswordChangeForm
from views.membership import current_customer_id
from views.session import SESSION_ID_KEY, audit_as, current_impersonation

bp = Blueprint("account", __name__)


def account_wallets() -> list[str] | None:
    """The addresses the Account page lists (None for staff, who have no account)."""
    if current_user.is_staff:
        return None
    customer_id = current_customer_id()
    if customer_id is None:
        return []
    return [to_checksum_address(row.address)
            for row in wallets.list_for(accounts.customer_account(customer_id).id)]


def render_account(status: int = 200, **forms: Any):
    """The Account page, with the forms given (bound, with their errors) or fresh ones."""
    user = current_user._get_current_object()
    return render_template(
        "auth/account.html", form=forms.get("form") or PasswordChangeForm(),
        email_form=forms.get("email_form") or EmailChangeForm(), button=ButtonForm(),
        sessions=sessions.active(user) if current_impersonation() is None else [],
        current_session=session.get(SESSION_ID_KEY), memberships=members.customers_of(user),
        wallets=account_wallets(),
        wallet_domain=current_app.config["WALLET_AUTH_DOMAIN"], **_notifications(),
        **{k: v for k, v in forms.items() if k not in ("form", "email_form")}), status


def _notifications() -> dict[str, Any]:
    """The current customer's notification preferences, for the Account page: shown to a
    member whose role may change them (billing.settings); staff have none."""
    user = current_user._get_current_object()
    customer_id = current_customer_id()
    if user.is_staff or customer_id is None:
        return {}
    if not members.allows(members.role_of(user, customer_id), members.SETTINGS):
        return {}
    try:
        account = accounts.customer_account(customer_id)
    except NotFound:
        return {}
    return {"notify_account": account, "notice_kinds": notices.KINDS, "always_sent": notices.ALWAYS}


def _verify_url(token: str) -> str:
    return url_for("account.verify_email", token=token, _external=True)


@bp.post("/account/sessions/<session_id>/end")
@login_required
@audit_as("session.end")
def end_session(session_id: str):
    """End one of the person's sessions (this one logs out here)."""
    user = current_user._get_current_object()
    sessions.end(user, session_id)
    if session_id == session.get(SESSION_ID_KEY):
        logout_user()
        session.clear()
        return redirect(url_for("auth.login"), code=303)
    flash("That session is logged out.")
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/sessions/end-all")
@login_required
@audit_as("session.end_all")
def end_all_sessions():
    """Log out everywhere: every session of the person, this one too."""
    sessions.end_all(current_user._get_current_object())
    if current_impersonation() is None:
        logout_user()
        session.clear()
        flash("You are logged out everywhere.", "info")
        return redirect(url_for("auth.login"), code=303)
    return redirect(url_for("auth.account"), code=303)


@bp.post("/account/email")
@login_required
@audit_as("email.change")
def change_email():
    """Ask for a new email: it takes effect once the new address is verified."""
    form = EmailChangeForm()
    if form.validate_on_submit():
        try:
            address = recovery.request_email_change(current_user._get_current_object(),
                                                    form.email.data, form.password.data, _verify_url)
        except TallyError as exc:
            uow.rollback()  # a refusal changes nothing
            getattr(form, exc.param or "email", form.email).errors = [exc.message]
        else:
            flash(f"We sent a link to {address}. Your email changes once you open it.")
            return redirect(url_for("auth.account"), code=303)
    return render_account(400, email_form=form)


@bp.post("/account/email/verify")
@login_required
@audit_as("email.verify_send")
def send_verification():
    """Send the verification link again."""
    if ButtonForm().validate_on_submit() and recovery.send_verification(
            current_user._get_current_object(), _verify_url):
        flash(f"We sent a link to {current_user.email}. Open it to verify the address.")
    return redirect(url_for("auth.account"), code=303)


@bp.get("/account/email/verify")
def verify_email():
    """The link in a verification email (works logged in or not)."""
    try:
        user = recovery.verify(request.args.get("token"))
    except TallyError as exc:
        uow.rollback()
        return render_template("error.html", error=exc), exc.status
    flash(f"{user.email} is verified.", "info")
    return redirect(url_for("auth.account" if current_user.is_authenticated else "auth.login"),
                    code=303)


@bp.post("/account/customer")
@login_required
def switch_customer():
    """The header's switcher: work in another customer the person belongs to."""
    if ButtonForm().validate_on_submit():
        customer = members.switch_customer(current_user._get_current_object(),
                                           request.form.get("customer_id", ""))
        flash(f"You are now working in {customer.name}.")
    return redirect(url_for("pages.dashboard"), code=303)
