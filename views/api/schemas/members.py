"""Members of the key's customer, their roles, and invitations."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.members import MEMBER_ROLES
from views.api.schemas.common import Answer, ListOf, Request, Says, Time

Role = Literal["owner", "admin", "billing", "developer", "viewer"]
assert set(Role.__args__) == set(MEMBER_ROLES)  # type: ignore[attr-defined]
_ROLE_SAYS = Says("role must be one of " + ", ".join(MEMBER_ROLES) + ".", "role is required.")


class Member(Answer):
    id: str = Field(examples=["mem_Vb2kq9Lr0xTz7Hm1Pa4s"])
    object: Literal["member"] = "member"
    email: str = Field(examples=["ada@example.com"])
    name: str
    role: Role
    two_factor: bool = Field(description="Whether the member logs in with a second factor.")
    created_at: Time


class MemberList(ListOf[Member]):
    pass


class RemovedMember(Answer):
    id: str
    object: Literal["member"] = "member"
    deleted: Literal[True] = True


class Invitation(Answer):
    id: str = Field(examples=["inv_Vb2kq9Lr0xTz7Hm1Pa4s"])
    object: Literal["invitation"] = "invitation"
    email: str
    role: Role
    status: Literal["pending", "accepted", "revoked", "expired"]
    created_at: Time
    expires_at: Time


class InvitationList(ListOf[Invitation]):
    pass


class InviteRequest(Request):
    email: Annotated[str, Field(max_length=320, examples=["ada@example.com"]),
                     Says("email must be an email address.", "email is required.")]
    role: Annotated[Role, _ROLE_SAYS]


class RoleRequest(Request):
    role: Annotated[Role, _ROLE_SAYS]
