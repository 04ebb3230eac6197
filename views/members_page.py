"""The Members page (who works in this customer, with which role; invitations) and the
invitation link's page, where the invitee joins with a new or existing login."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from models import Customer
from models.members import MEMBER_ROLES
from services import uow
from services.errors import TallyError
from services.identity import accounts, members
from views.forms import AcceptInvitationForm, ButtonForm, InviteForm, RoleForm
from views.membership import current_account, customer_page, member_actor
from views.session import audit_as, start_session

bp = Blueprint("members_page", __name__)


def _customer() -> Customer:
    return current_account().customer


def _page(status: int = 200, invite_form: InviteForm | None = None, error: str | None = None):
    customer = _customer()
    manage = members.allows(g.member_role, members.MEMBERS)
    return render_template(
        "members.html", customer=customer, members=members.list_members(customer.id),
        invitations=members.pending_invitations(customer.id) if manage else [],
        invite_form=invite_form or InviteForm(), role_form=RoleForm(), button=ButtonForm(),
        manage=manage, owner=members.allows(g.member_role, members.OWNERSHIP),
        roles=MEMBER_ROLES, descriptions=members.ROLE_DESCRIPTIONS, error=error), status


@bp.get("/members")
@customer_page(members.READ)
def index():
    return _page()


def _accept_url(token: str) -> str:
    return url_for("members_page.accept", token=token, _external=True)


@bp.post("/members/invitations")
@customer_page(members.MEMBERS)
@audit_as("member.invite")
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(400, form)
    try:
        row = members.send_invitation(member_actor(), current_user._get_current_object(), g.member_role,
                                      _customer(), email=form.email.data, role=form.role.data,
                                      accept_url=_accept_url)
    except TallyError as exc:
        uow.rollback()
        form.email.errors = [exc.message]
        return _page(exc.status if exc.status != 400 else 400, form)
    flash(f"Invitation sent to {row.email} as {row.role}.")
    return redirect(url_for("members_page.index"), code=303)


@bp.post("/members/invitations/<invitation_id>/revoke")
@customer_page(members.MEMBERS)
@audit_as("member.invitation_revoke")
def revoke_invitation(invitation_id: str):
    row = members.revoke_invitation(member_actor(), current_user._get_current_object(), g.member_role,
                                    _customer().id, invitation_id)
    flash(f"The invitation to {row.email} is revoked.")
    return redirect(url_for("members_page.index"), code=303)


@bp.post("/members/<member_id>/role")
@customer_page(members.MEMBERS)
@audit_as("member.role_change")
def change_role(member_id: str):
    form = RoleForm()
    target = members.get_member(_customer().id, member_id)
    if form.validate_on_submit():
        members.change_role(member_actor(), current_user._get_current_object(), g.member_role, target,
                            form.role.data)
        flash(f"{target.user.email} is now {target.role}.")
    return redirect(url_for("members_page.index"), code=303)


@bp.post("/members/<member_id>/remove")
@customer_page(members.MEMBERS)
@audit_as("member.remove")
def remove(member_id: str):
    target = members.get_member(_customer().id, member_id)
    email = target.user.email
    members.remove(member_actor(), current_user._get_current_object(), g.member_role, target)
    flash(f"{email} is removed, and the API keys they created here are revoked.")
    return redirect(url_for("members_page.index"), code=303)


@bp.route("/invitations/accept", methods=["GET", "POST"])
def accept():
    """The invitation link: GET shows it (a mail scanner opening it changes nothing); the
    button joins with the login you are in, or creates one for the invited email."""
    token = request.values.get("token", "")
    form = AcceptInvitationForm()
    user = current_user._get_current_object() if current_user.is_authenticated else None
    try:
        invitation = members.read_invitation(token)
        existing = accounts.find_user(invitation.email) is not None
        if form.validate_on_submit():
            accepted = _accept(token, user, form)
            if accepted is not None:
                return accepted
    except TallyError as exc:
        uow.rollback()
        return render_template("invitation.html", error=exc, form=form, token=token), exc.status
    status = 400 if request.method == "POST" else 200
    return render_template("invitation.html", invitation=invitation, form=form, token=token,
                           existing=existing, user=user), status


def _accept(token: str, user, form: AcceptInvitationForm):
    if user is None and not form.password.data:
        form.password.errors = ["Choose a password."]
        return None
    password_hash = None
    if user is None:
        try:
            accounts.check_password_rules(form.password.data)
        except TallyError as exc:
            form.password.errors = [exc.message]
            return None
        password_hash = accounts.hash_password(form.password.data)
    done = members.accept(token, user=user, password_hash=password_hash,
                          name=(form.name.data or "").strip())
    if user is None:
        start_session(done.user)
    flash(f"Welcome to {done.membership.customer.name}: you joined as {done.membership.role}.", "info")
    return redirect(url_for("pages.dashboard"), code=303)
