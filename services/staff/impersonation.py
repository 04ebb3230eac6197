""""View as customer": audited, time-limited, read-only unless the staff member holds
`impersonate_write`.

The browser session keeps only the id of an `Impersonation` row; whether it is still
running (not stopped, not expired) is decided here on every request. The audit log
always records the true user (the staff member) beside the customer user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from extensions import db
from models import Impersonation, User
from models.base import utcnow
from services.errors import Forbidden, NotFound
from services.staff import audit
from services.staff.audit import Actor
from services.staff.rules import PERMISSION_IMPERSONATE_WRITE, check_reason, require_staff

ENDED_STOPPED = "stopped"
ENDED_EXPIRED = "expired"

# What each guarded action is called in the refusal message.
ACTION_LABELS = {
    "topup.intent": "Topping up credit",
    "topup.confirm": "Topping up credit",
    "key.create": "Creating an API key",
    "key.rotate": "Rotating an API key",
    "key.revoke": "Revoking an API key",
    "settings.update": "Changing billing settings",
    "plan.change": "Changing the plan",
    "card.update": "Entering a card",
    "portal.open": "Opening the billing portal",
}


class ReadOnly(Forbidden):
    """A money or secret action, refused while viewing as a customer."""

    title = "Read-only while viewing as a customer"
    code = "impersonation_read_only"


@dataclass(frozen=True)
class Started:
    impersonation: Impersonation
    user: User


def start(actor: Actor, user_id: str, reason: object, *, minutes: int) -> Started:
    """Begin viewing as the customer user `user_id`, for at most `minutes`."""
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
    if user.customer_id is None:
        raise NotFound("This user belongs to no customer.", param="user_id")
    now = utcnow()
    row = Impersonation(staff_user_id=staff.id, user_id=user.id, customer_id=user.customer_id,
                        reason=reason, started_at=now, expires_at=now + timedelta(minutes=minutes))
    db.session.add(row)
    db.session.flush()
    audit.record(Actor(staff, actor.via, actor.ip, actor.user_agent, impersonated=user),
                 "impersonation.start", customer_id=user.customer_id, reason=reason,
                 meta={"impersonation_id": row.id, "expires_at": row.expires_at,
                       "minutes": minutes})
    db.session.commit()
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
    ended = db.session.execute(
        update(Impersonation).where(Impersonation.id == row.id, Impersonation.ended_at.is_(None))
        .values(ended_at=min(now, row.expires_at) if why == ENDED_EXPIRED else now, end_reason=why)
    ).rowcount
    if ended:
        staff = db.session.get(User, row.staff_user_id)
        user = db.session.get(User, row.user_id)
        audit.record(Actor(staff, actor.via, actor.ip, actor.user_agent, impersonated=user),
                     "impersonation.stop" if why == ENDED_STOPPED else "impersonation.expire",
                     customer_id=row.customer_id,
                     meta={"impersonation_id": row.id, "started_at": row.started_at,
                           "expires_at": row.expires_at})
    db.session.commit()
    db.session.refresh(row)
    return row


def check_write(staff: User, action: str) -> None:
    """The one policy for money and secret actions while viewing as a customer."""
    if PERMISSION_IMPERSONATE_WRITE in (staff.permissions or []):
        return
    what = ACTION_LABELS.get(action, "This action")
    raise ReadOnly(
        f"{what} is not allowed while you view as a customer: staff access is read-only. "
        f"Stop viewing as the customer, or ask an administrator for the "
        f"{PERMISSION_IMPERSONATE_WRITE} permission.",
        extra={"action": action})


def record_view(actor: Actor, impersonation: Impersonation, path: str) -> None:
    """A page the staff member opened while viewing as the customer."""
    audit.record_now(actor, "impersonation.view", customer_id=impersonation.customer_id,
                     meta={"impersonation_id": impersonation.id, "path": path[:500]})


def record_action(actor: Actor, impersonation: Impersonation, action: str, *, outcome: str,
                  account_id: str | None = None, before: dict | None = None,
                  after: dict | None = None, detail: dict | None = None) -> None:
    """A guarded action while viewing as the customer: done, failed or refused."""
    audit.record_now(actor, action, customer_id=impersonation.customer_id, account_id=account_id,
                     reason=impersonation.reason, before=before, after=after,
                     meta={"impersonation_id": impersonation.id, "outcome": outcome,
                           **(detail or {})})

