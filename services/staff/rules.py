"""What every staff action checks: a staff user, a reason for the audit log, a sane amount."""

from __future__ import annotations

from models import User
from services.errors import Forbidden, InvalidInput

PERMISSION_IMPERSONATE_WRITE = "impersonate_write"
PERMISSIONS = (PERMISSION_IMPERSONATE_WRITE,)
MIN_REASON_LENGTH = 3  # after runs of spaces become one
MAX_REASON_LENGTH = 500
MAX_STAFF_AMOUNT = 10**9  # 10,000,000.00 in a two-decimal currency: a typo guard
MAX_NOTE_LENGTH = 200


def require_staff(user: User | None) -> User:
    """The user, if staff; else a 403 `staff_only`."""
    if user is None or not user.is_staff:
        raise Forbidden("Only support staff can do this.", code="staff_only")
    return user


def check_reason(reason: str | None) -> str:
    """Every staff action says why; the reason goes into the audit log."""
    text = " ".join((reason or "").split())
    if len(text) < MIN_REASON_LENGTH:
        raise InvalidInput(f"Give a reason of at least {MIN_REASON_LENGTH} characters.",
                           code="reason_required", param="reason")
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInput(f"Keep the reason under {MAX_REASON_LENGTH} characters.", param="reason")
    return text


def check_note(note: str | None) -> str | None:
    """The optional note the customer reads beside a grant or adjustment (never the
    reason, which is for the audit log); None when empty."""
    text = " ".join((note or "").split())
    if len(text) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"Keep the note for the customer under {MAX_NOTE_LENGTH} characters.",
                           param="note")
    return text or None


def check_amount(amount: int, *, positive: bool, param: str = "amount") -> int:
    """Minor units staff may move at once: not zero (positive, for grants) and within the
    typo guard."""
    if positive and amount <= 0:
        raise InvalidInput(f"{param} must be greater than zero.", param=param)
    if amount == 0:
        raise InvalidInput(f"{param} must not be zero.", param=param)
    if abs(amount) > MAX_STAFF_AMOUNT:
        raise InvalidInput(f"{param} is larger than staff may move at once ({MAX_STAFF_AMOUNT:,}).",
                           param=param)
    return amount
