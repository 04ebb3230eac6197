"""Members of the key's customer and invitations (owners and admins manage them)."""

from __future__ import annotations

from flask import g, request, url_for

from models import Invitation as InvitationRow
from models import Membership
from models.audit import VIA_API
from models.base import utcnow
from services.identity import members
from services.pagination import paginate_list
from services.staff.audit import Actor
from views.api import ACCOUNT_KEY, account, bp, key_user
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.members import (
    Invitation,
    InvitationList,
    InviteRequest,
    Member,
    MemberList,
    RemovedMember,
    RoleRequest,
)

TAG = "Members"


def _actor() -> Actor:
    return Actor(staff=None, via=VIA_API, ip=request.remote_addr,
                 user_agent=request.user_agent.string or None)


def member_answer(row: Membership) -> Member:
    return Member(id=row.id, email=row.user.email, name=row.user.name, role=row.role,  # type: ignore[arg-type]
                  two_factor=row.user.two_factor_enabled, created_at=row.created_at)


def invitation_answer(row: InvitationRow) -> Invitation:
    status = ("accepted" if row.accepted_at else "revoked" if row.revoked_at else
              "expired" if row.expires_at <= utcnow() else "pending")
    return Invitation(id=row.id, email=row.email, role=row.role, status=status,  # type: ignore[arg-type]
                      created_at=row.created_at, expires_at=row.expires_at)


@bp.get("/members")
@operation(ACCOUNT_KEY, TAG, "The customer's members and their roles", MemberList, query=PageQuery,
           permission=members.READ)
def list_members(query: PageQuery) -> MemberList:
    """Owners first, then by when they joined."""
    rows = members.list_members(account().customer_id)
    return MemberList.of(paginate_list(rows, lambda m: m.id, **query.page()), member_answer)


@bp.post("/members/invitations")
@operation(ACCOUNT_KEY, TAG, "Invite someone by email", Invitation, status=201, body=InviteRequest,
           errors=(409,), permission=members.MEMBERS,
           description="Emails a link that works once, for 7 days. Only owners invite owners.")
def invite(body: InviteRequest) -> tuple[Invitation, int]:
    row = members.send_invitation(_actor(), key_user(), g.member_role, account().customer,
                                  email=body.email, role=body.role, accept_url=_accept_url)
    return invitation_answer(row), 201


def _accept_url(token: str) -> str:
    return url_for("members_page.accept", token=token, _external=True)


@bp.get("/members/invitations")
@operation(ACCOUNT_KEY, TAG, "Pending invitations, newest first", InvitationList, query=PageQuery,
           permission=members.MEMBERS)
def list_invitations(query: PageQuery) -> InvitationList:
    rows = members.pending_invitations(account().customer_id)
    return InvitationList.of(paginate_list(rows, lambda i: i.id, **query.page()), invitation_answer)


@bp.delete("/members/invitations/<invitation_id>")
@operation(ACCOUNT_KEY, TAG, "Revoke a pending invitation", Invitation, errors=(404,),
           permission=members.MEMBERS)
def revoke_invitation(invitation_id: str) -> Invitation:
    row = members.revoke_invitation(_actor(), key_user(), g.member_role,
                                    account().customer_id, invitation_id)
    return invitation_answer(row)


@bp.post("/members/<member_id>")
@operation(ACCOUNT_KEY, TAG, "Change a member's role", Member, body=RoleRequest, errors=(404, 409),
           permission=members.MEMBERS,
           description="Only owners make owners or change an owner; there is always one owner.")
def change_role(member_id: str, body: RoleRequest) -> Member:
    target = members.get_member(account().customer_id, member_id)
    return member_answer(members.change_role(_actor(), key_user(), g.member_role, target,
                                             body.role))


@bp.delete("/members/<member_id>")
@operation(ACCOUNT_KEY, TAG, "Remove a member", RemovedMember, errors=(404, 409),
           permission=members.MEMBERS,
           description="Their API keys for this account are revoked with them.")
def remove_member(member_id: str) -> RemovedMember:
    target = members.get_member(account().customer_id, member_id)
    members.remove(_actor(), key_user(), g.member_role, target)
    return RemovedMember(id=member_id)
