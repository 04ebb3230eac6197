"""Members of a customer, their roles, what each role may do, and invitations.

A customer has members (`Membership`): the person who signed up is its **owner**; owners
and admins invite others by email. What a role may do is one table, `ROLE_PERMISSIONS`;
every page and API operation declares the one permission it needs, and `authorize` is the
one check (views/session.py for pages, views/api/declare.py for /v1 keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import ApiKey, Customer, Invitation, Membership, User
from models.base import utcnow
from models.members import (
    MEMBER_ROLES,
    ROLE_ADMIN,
    ROLE_BILLING,
    ROLE_DEVELOPER,
    ROLE_OWNER,
    ROLE_VIEWER,
)
from services import uow
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.identity.accounts import find_user, normalise_email
from services.notifications import queue_email
from services.staff import audit
from services.staff.audit import Actor

# Permissions: what a page or an operation needs. ------------------------------------------
READ = "read"  # see the account: dashboard, usage, activity, invoices, keys list, members
KEYS = "keys.manage"  # create, rotate and revoke API keys
USAGE = "usage.record"  # record usage (/v1/authorize, /v1/events): product servers' keys
PAY = "billing.pay"  # top-ups, cards, plans and subscriptions, the Stripe portal
SETTINGS = "billing.settings"  # time zone, spend cap, alert thresholds
MEMBERS = "members.manage"  # invite, change roles, remove members
OWNERSHIP = "members.ownership"  # make someone an owner, or change or remove an owner
SECURITY = "security.manage"  # require two-factor authentication of every member

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    ROLE_OWNER: frozenset({READ, KEYS, USAGE, PAY, SETTINGS, MEMBERS, OWNERSHIP, SECURITY}),
    ROLE_ADMIN: frozenset({READ, KEYS, USAGE, PAY, SETTINGS, MEMBERS}),
    ROLE_BILLING: frozenset({READ, PAY, SETTINGS}),
    ROLE_DEVELOPER: frozenset({READ, KEYS, USAGE}),
    ROLE_VIEWER: frozenset({READ}),
}
# Paying or raising a limit needs a verified email (the person acting, or the key's creator).
NEEDS_VERIFIED_EMAIL = frozenset({PAY, SETTINGS})
ROLE_DESCRIPTIONS = {
    ROLE_OWNER: "Everything, including members, ownership and security settings",
    ROLE_ADMIN: "Everything but ownership and security settings",
    ROLE_BILLING: "Top-ups, cards, plans, invoices and spending settings; no API keys",
    ROLE_DEVELOPER: "API keys and usage; no payments",
    ROLE_VIEWER: "Read only",
}
_PERMISSION_WORDS = {
    READ: "see this account", KEYS: "manage API keys", USAGE: "record usage",
    PAY: "make payments or change the plan", SETTINGS: "change spending settings",
    MEMBERS: "manage members", OWNERSHIP: "change owners or link wallets",
    SECURITY: "change security settings",
}

INVITATION_TTL = timedelta(days=7)


class RoleRefused(Forbidden):
    code = "role_forbidden"


class EmailNotVerified(Forbidden):
    code = "email_not_verified"


def check_role(role: object) -> str:
    """A role name, or a 400 naming `role`."""
    if role not in MEMBER_ROLES:
        raise InvalidInput("role must be one of " + ", ".join(MEMBER_ROLES) + ".", param="role")
    return str(role)


def allows(role: str | None, permission: str) -> bool:
    """Whether `role` holds `permission` (templates use it to show only what a role may do)."""
    return role is not None and permission in ROLE_PERMISSIONS.get(role, frozenset())


def authorize(role: str | None, permission: str, *, email_verified: bool = True) -> None:
    """The one check: 403 `role_forbidden` when the role lacks the permission, 403
    `email_not_verified` when it needs a verified email the person has not verified."""
    if not allows(role, permission):
        raise RoleRefused(f"Your role ({role or 'none'}) cannot {_PERMISSION_WORDS[permission]}. "
                          "Ask an owner or admin of this account.", extra={"role": role})
    if permission in NEEDS_VERIFIED_EMAIL and not email_verified:
        raise EmailNotVerified(
            "Verify your email address first: until then you can look around and create API "
            "keys, but not pay or raise limits. Open the link we emailed you, or send a new "
            "one from the Account page.")


# Memberships ------------------------------------------------------------------------------


def membership(user: User, customer_id: str | None) -> Membership | None:
    """The person's membership in this customer, or None."""
    if customer_id is None:
        return None
    return db.session.execute(select(Membership).where(
        Membership.customer_id == customer_id, Membership.user_id == user.id)).scalar_one_or_none()


def role_of(user: User, customer_id: str | None) -> str | None:
    """The person's role in this customer, or None when not a member."""
    row = membership(user, customer_id)
    return row.role if row else None


def key_role(key: ApiKey, customer_id: str) -> tuple[str | None, bool]:
    """The role an account key acts with (its creator's role now) and whether its creator's
    email is verified. Keys from before members existed (no creator) act as the owner."""
    if key.user_id is None:
        return ROLE_OWNER, True
    user = db.session.get(User, key.user_id)
    if user is None:
        return None, False
    return role_of(user, customer_id), user.email_verified


def add_member(customer: Customer, user: User, role: str) -> Membership:
    """Add a person to a customer (the caller commits); they now work in it."""
    row = Membership(customer_id=customer.id, user_id=user.id, role=check_role(role))
    db.session.add(row)
    user.customer_id = customer.id
    db.session.flush()
    return row


def customers_of(user: User) -> list[tuple[Customer, str]]:
    """Every customer the person belongs to, with their role, by name."""
    rows = db.session.execute(
        select(Customer, Membership.role).join(Membership, Membership.customer_id == Customer.id)
        .where(Membership.user_id == user.id).order_by(Customer.name)).all()
    return [(customer, role) for customer, role in rows]


def list_members(customer_id: str) -> list[Membership]:
    """The customer's members, owners first, then by when they joined."""
    order = {role: n for n, role in enumerate(MEMBER_ROLES)}
    rows = list(db.session.execute(select(Membership).where(Membership.customer_id == customer_id)
                                   .order_by(Membership.created_at)).scalars())
    return sorted(rows, key=lambda m: order.get(m.role, 99))


def get_member(customer_id: str, member_id: str) -> Membership:
    """The customer's member with this id, or a 404."""
    row = db.session.get(Membership, member_id)
    if row is None or row.customer_id != customer_id:
        raise NotFound(f"No such member: {member_id}", param="id")
    return row


def switch_customer(user: User, customer_id: str) -> Customer:
    """Work in another customer the person belongs to (404 for any other)."""
    if membership(user, customer_id) is None:
        raise NotFound(f"No such customer: {customer_id}", param="customer_id")
    user.customer_id = customer_id
    customer = db.session.get(Customer, customer_id)
    assert customer is not None
    return customer


def _owners(customer_id: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.customer_id == customer_id, Membership.role == ROLE_OWNER)) or 0


def _check_owner_change(acting_role: str | None, target: Membership, new_role: str | None) -> None:
    """Only owners touch ownership, and a customer keeps at least one owner."""
    if (target.role == ROLE_OWNER or new_role == ROLE_OWNER) and not allows(acting_role, OWNERSHIP):
        raise RoleRefused("Only an owner can make someone an owner, or change or remove an owner.")
    if target.role == ROLE_OWNER and new_role != ROLE_OWNER and _owners(target.customer_id) <= 1:
        raise Conflict("An account always has at least one owner: make someone else an owner "
                       "first.", code="last_owner")


def change_role(actor: Actor, by: User | None, acting_role: str | None, target: Membership,
                role: str) -> Membership:
    """Give a member another role (recorded in the audit log)."""
    role = check_role(role)
    authorize(acting_role, MEMBERS)
    _check_owner_change(acting_role, target, role)
    before = target.role
    if before != role:
        target.role = role
        audit.record(actor, "member.role_change", customer_id=target.customer_id,
                     before={"role": before}, after={"role": role},
                     meta={"member_id": target.id, "email": target.user.email, "by": _who(by)})
    db.session.flush()
    return target


def remove(actor: Actor, by: User | None, acting_role: str | None, target: Membership) -> None:
    """Remove a member (a member may also leave); their sessions in this customer end with
    it, and the API keys they created for it are revoked. Recorded in the audit log."""
    authorize(acting_role, MEMBERS)
    _check_owner_change(acting_role, target, None)
    user, customer_id = target.user, target.customer_id
    db.session.execute(update(ApiKey).where(
        ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None),
        ApiKey.account_id.in_(_account_ids(customer_id))).values(revoked_at=utcnow()))
    audit.record(actor, "member.remove", customer_id=customer_id, before={"role": target.role},
                 meta={"member_id": target.id, "email": user.email, "by": _who(by)})
    db.session.delete(target)
    db.session.flush()
    if user.customer_id == customer_id:
        others = customers_of(user)
        user.customer_id = others[0][0].id if others else None


def _account_ids(customer_id: str) -> list[str]:
    customer = db.session.get(Customer, customer_id)
    return [a.id for a in customer.accounts] if customer else []


# Invitations ------------------------------------------------------------------------------


def _who(by: User | None) -> str:
    return by.email if by is not None else "an API key"


def send_invitation(actor: Actor, by: User | None, acting_role: str | None, customer: Customer, *,
                    email: str, role: str, accept_url: Callable[[str], str]) -> Invitation:
    """Invite `email` with `role` and email them the link (through the outbox)."""
    row, token = invite(actor, by, acting_role, customer, email=email, role=role)
    days = INVITATION_TTL.days
    queue_email(row.email, f"You are invited to {customer.name} on Tally",
                f"{_who(by) if by else 'Someone'} invited you to {customer.name} on Tally, as "
                f"{role} ({ROLE_DESCRIPTIONS[role].lower()}).\n\n"
                f"Accept here:\n\n{accept_url(token)}\n\n"
                f"The link works once, for {days} days. If you did not expect this, ignore it.\n",
                customer_id=customer.id)
    return row


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt="tally-invitation")


def invite(actor: Actor, by: User | None, acting_role: str | None, customer: Customer, *,
           email: str, role: str) -> tuple[Invitation, str]:
    """An invitation to `email` with `role`; returns it with its token (for the emailed
    link). Inviting an address already invited replaces the earlier invitation."""
    email, role = normalise_email(email), check_role(role)
    authorize(acting_role, MEMBERS)
    if role == ROLE_OWNER and not allows(acting_role, OWNERSHIP):
        raise RoleRefused("Only an owner can invite another owner.")
    existing = find_user(email)
    if existing is not None and membership(existing, customer.id) is not None:
        raise Conflict(f"{email} is already a member.", code="already_member", param="email")
    now = utcnow()
    db.session.execute(update(Invitation).where(
        Invitation.customer_id == customer.id, func.lower(Invitation.email) == email,
        Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)).values(revoked_at=now))
    row = Invitation(customer_id=customer.id, email=email, role=role,
                     invited_by_id=by.id if by else None,
                     created_at=now, expires_at=now + INVITATION_TTL)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "member.invite", customer_id=customer.id,
                 meta={"invitation_id": row.id, "email": email, "role": role, "by": _who(by)})
    return row, _serializer().dumps(row.id)


def pending_invitations(customer_id: str) -> list[Invitation]:
    """Invitations not yet accepted, revoked or expired, newest first."""
    rows = db.session.execute(select(Invitation).where(
        Invitation.customer_id == customer_id, Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None), Invitation.expires_at > utcnow())
        .order_by(Invitation.created_at.desc())).scalars()
    return list(rows)


def revoke_invitation(actor: Actor, by: User | None, acting_role: str | None, customer_id: str,
                      invitation_id: str) -> Invitation:
    """Revoke a pending invitation: its link stops working."""
    authorize(acting_role, MEMBERS)
    row = db.session.get(Invitation, invitation_id)
    if row is None or row.customer_id != customer_id or not row.is_pending:
        raise NotFound(f"No such pending invitation: {invitation_id}", param="id")
    row.revoked_at = utcnow()
    audit.record(actor, "member.invitation_revoke", customer_id=customer_id,
                 meta={"invitation_id": row.id, "email": row.email, "by": _who(by)})
    return row


_INVALID = "This invitation link is not valid: it was used, revoked or has expired. Ask for a new one."


def read_invitation(token: object) -> Invitation:
    """The pending invitation a link carries, or a 400 `invalid_invitation`."""
    try:
        invitation_id = _serializer().loads(str(token or ""),
                                            max_age=int(INVITATION_TTL.total_seconds()))
    except (BadSignature, SignatureExpired):
        raise InvalidInput(_INVALID, code="invalid_invitation", param="token") from None
    row = db.session.get(Invitation, str(invitation_id))
    if row is None or not row.is_pending:
        raise InvalidInput(_INVALID, code="invalid_invitation", param="token")
    return row


@dataclass(frozen=True)
class Accepted:
    membership: Membership
    user: User
    created: bool  # a new login was created


def accept(token: object, *, user: User | None = None, password_hash: str | None = None,
           name: str = "") -> Accepted:
    """Accept an invitation once: as `user` (logged in, with the invited email), or by
    creating a login for the invited email with `password_hash`."""
    row = read_invitation(token)
    created = False
    if user is None:
        if find_user(row.email) is not None:
            raise Conflict("You already have a Tally login with this email: log in, then open "
                           "the link again.", code="login_to_accept", param="email")
        if password_hash is None:
            raise InvalidInput("Choose a password.", param="password")
        user = User(email=row.email, name=name or row.email.split("@")[0],
                    password_hash=password_hash, email_verified_at=utcnow())
        db.session.add(user)
        created = True
    elif user.email != row.email:
        raise Forbidden(f"This invitation is for {row.email}; you are logged in as {user.email}.",
                        code="invitation_other_email")
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()  # the link reached this address
    if _claim(row) != 1:
        raise InvalidInput(_INVALID, code="invalid_invitation", param="token")
    try:
        member = add_member(row.customer, user, row.role)
    except IntegrityError:
        raise Conflict("You are already a member.", code="already_member") from None
    audit.record(Actor(staff=None, via="member"), "member.join", customer_id=row.customer_id,
                 meta={"invitation_id": row.id, "email": user.email, "role": row.role})
    return Accepted(member, user, created)


def _claim(row: Invitation) -> int:
    """Mark the invitation accepted, once (a conditional UPDATE decides a race)."""
    return uow.rows_changed(update(Invitation).where(
        Invitation.id == row.id, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .values(accepted_at=utcnow()))

