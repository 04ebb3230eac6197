""""View as customer": audited, time-limited, read-only unless the staff member holds
`impersonate_write`.

The browser session keeps only the id of an `Impersonation` row; whether it is still
running (not stopped, not expired) is decided here on every request. The audit log
always records the true user (the staff member) beside the customer user. Which requests
are refused is decided before any view runs (views/session.py): every one that is not a
read, whatever its route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from extensions import db
from models import Account, ApiKey, AuditEvent, Impersonation, Subscription, User
from models.base import utcnow
from services import uow
from services.errors import Forbidden, NotFound
from services.identity import members
from services.staff import audit
from services.staff.audit import Actor
from services.staff.rules import PERMISSION_IMPERSONATE_WRITE, check_reason, require_staff

ENDED_STOPPED = "stopped"
ENDED_EXPIRED = "expired"

VIEW_ACTION = "impersonation.view"
# Looks at the same page within this long are one audit row (htmx polls, reloads).
VIEW_FOLD = timedelta(minutes=1)


class ReadOnly(Forbidden):
    """Any change, refused while viewing as a customer without `impersonate_write`."""

    title = "Read-only while viewing as a customer"
    code = "impersonation_read_only"


@dataclass(frozen=True)
class Started:
    impersonation: Impersonation
    user: User


def start(actor: Actor, user_id: str, reason: str | None, *, minutes: int,
          customer_id: str | None = None) -> Started:
    """Begin viewing as the customer user `user_id` in `customer_id` (default: the customer
    they work in now), for at most `minutes`. They must be a member of it."""
    staff = require_staff(actor.staff)
    reason = check_reason(reason)
    if not 1 <= minutes <= 24 * 60:
        raise ValueError("IMPERSONATION_MINUTES must be between 1 and 1440")
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No such user: {user_id}", param="user_id")
    if user.is_staff:
        raise Forbidden("Staff members cannot view as another staff member.",
                        code="cannot_impersonate_staff", param="user_id")
    customer_id = customer_id or user.customer_id
    if customer_id is None or members.role_of(user, customer_id) is None:
        raise NotFound("This user is not a member of that customer.", param="user_id")
    now = utcnow()
    row = Impersonation(staff_user_id=staff.id, user_id=user.id, customer_id=customer_id,
                        reason=reason, started_at=now, expires_at=now + timedelta(minutes=minutes))
    db.session.add(row)
    db.session.flush()
    audit.record(Actor(staff, actor.via, actor.ip, actor.user_agent, impersonated=user),
                 "impersonation.start", customer_id=customer_id, reason=reason,
                 meta={"impersonation_id": row.id, "expires_at": row.expires_at,
                       "minutes": minutes})
    return Started(row, user)


def get_running(impersonation_id: str, staff_id: str, now: datetime | None = None) -> Impersonation | None:
    """The impersonation if it belongs to this staff member, was not stopped and has not expired."""
    row = db.session.get(Impersonation, impersonation_id)
    if row is None or row.staff_user_id != staff_id or row.ended_at is not None:
        return None
    if row.expires_at <= (now or utcnow()):
        return None
    return row


def end(impersonation_id: str, actor: Actor, *, why: str = ENDED_STOPPED) -> Impersonation | None:
    """Stop (or mark expired) once; the audit row is written by whichever call ends it."""
    row = db.session.get(Impersonation, impersonation_id)
    if row is None:
        return None
    now = utcnow()
    if why == ENDED_STOPPED and row.expires_at <= now:
        why = ENDED_EXPIRED  # stopped after it had already run out
    ended = uow.rows_changed(
        update(Impersonation).where(Impersonation.id == row.id, Impersonation.ended_at.is_(None))
        .values(ended_at=min(now, row.expires_at) if why == ENDED_EXPIRED else now, end_reason=why)
    )
    if ended:
        staff = db.session.get(User, row.staff_user_id)
        user = db.session.get(User, row.user_id)
        audit.record(Actor(staff, actor.via, actor.ip, actor.user_agent, impersonated=user),
                     "impersonation.stop" if why == ENDED_STOPPED else "impersonation.expire",
                     customer_id=row.customer_id,
                     meta={"impersonation_id": row.id, "started_at": row.started_at,
                           "expires_at": row.expires_at})
    db.session.refresh(row)
    return row


def check_write(staff: User, action: str) -> None:
    """The one policy for changes while viewing as a customer: none without the permission."""
    if PERMISSION_IMPERSONATE_WRITE in (staff.permissions or []):
        return
    raise ReadOnly(
        "Changes are not allowed while you view as a customer: staff access is read-only. "
        "Stop viewing as the customer, or ask an administrator for the "
        f"{PERMISSION_IMPERSONATE_WRITE} permission.",
        extra={"action": action})


def account_state(account_id: str | None) -> dict[str, Any] | None:
    """What a customer's action can change, for the before/after of an audited action:
    money, plan, settings, the active keys (prefixes only) and the subscription."""
    account = db.session.get(Account, account_id, populate_existing=True) if account_id else None
    if account is None:
        return None
    subscription = db.session.execute(
        select(Subscription).where(Subscription.account_id == account.id)
        .order_by(Subscription.created_at.desc()).limit(1)).scalar_one_or_none()
    return {
        "balance": account.balance, "pending_usage": account.pending_usage,
        "currency": account.currency, "tier": account.tier,
        "price_plan_id": account.price_plan_id, "time_zone": account.time_zone,
        "spend_cap": account.spend_cap, "alert_thresholds": list(account.alert_thresholds or []),
        "keys": list(db.session.execute(
            select(ApiKey.prefix).where(ApiKey.account_id == account.id,
                                        ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)).scalars()),
        "subscription": None if subscription is None else {
            "id": subscription.id, "plan": subscription.plan, "status": subscription.status,
            "cancel_at_period_end": subscription.cancel_at_period_end},
    }


def record_view(actor: Actor, impersonation: Impersonation, path: str, fetched: str) -> bool:
    """A page the staff member opened while viewing as the customer, however it was
    fetched (`page`, `htmx`, `json`, `pdf`...). The same path looked at again within
    VIEW_FOLD is folded into the row already there. True when a row was added (to the
    operation's transaction)."""
    path = path[:500]
    since = utcnow() - VIEW_FOLD
    recent = db.session.execute(
        select(AuditEvent.meta).where(
            AuditEvent.customer_id == impersonation.customer_id,
            AuditEvent.action == VIEW_ACTION, AuditEvent.created_at >= since)).scalars()
    if any(meta.get("impersonation_id") == impersonation.id and meta.get("path") == path
           for meta in recent):
        return False
    audit.record(actor, VIEW_ACTION, customer_id=impersonation.customer_id,
                 meta={"impersonation_id": impersonation.id, "path": path, "fetched": fetched})
    return True


def record_action(actor: Actor, impersonation: Impersonation, action: str, *, outcome: str,
                  account_id: str | None = None, before: dict[str, Any] | None = None,
                  after: dict[str, Any] | None = None,
                  detail: dict[str, Any] | None = None) -> None:
    """A change asked for while viewing as the customer: done, failed or refused (added to
    the operation's transaction, committed at its boundary)."""
    audit.record(actor, action, customer_id=impersonation.customer_id, account_id=account_id,
                     reason=impersonation.reason, before=before, after=after,
                     meta={"impersonation_id": impersonation.id, "outcome": outcome,
                           **(detail or {})})
