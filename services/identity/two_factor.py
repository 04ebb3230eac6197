"""Optional TOTP two-factor authentication (RFC 6238, with pyotp) and recovery codes.

Turning it on: `begin` stores a new secret (encrypted with a key derived from SECRET_KEY)
that counts only once `enable` checks a code from the authenticator app; `enable` returns
RECOVERY_CODES single-use recovery codes, shown once and stored as SHA-256 hashes. At
login, after the password, `verify` takes a current code (a window of one step either
side, for clocks that drift) that was never used before, or an unused recovery code,
which it uses up.

It is required of a person when an owner of a customer they belong to requires it of
every member, and of staff when TALLY_STAFF_REQUIRE_2FA is set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import or_, select, update

from extensions import db
from models import Customer, Membership, User
from models.base import utcnow
from services.errors import Conflict, InvalidInput
from services.identity import accounts, members
from services.staff import audit
from services.staff.audit import Actor

ISSUER = "Tally"
RECOVERY_CODES = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


@dataclass(frozen=True)
class Enrollment:
    secret: str  # base32, to type into the app by hand
    uri: str  # otpauth://, what the QR code holds
    qr_svg: str  # the QR code as inline SVG


def _fernet() -> Fernet:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"tally-totp\0" + secret).digest()))


def _secret(user: User) -> str | None:
    if not user.totp_secret:
        return None
    try:
        return _fernet().decrypt(user.totp_secret.encode()).decode()
    except InvalidToken:
        return None


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalise(code: object) -> str:
    return "".join(str(code or "").split()).replace("-", "").lower()


def enrollment(user: User) -> Enrollment:
    """The pending secret as the setup page shows it (a new one when there is none)."""
    if user.two_factor_enabled:
        raise Conflict("Two-factor authentication is already on.", code="two_factor_enabled")
    secret = _secret(user)
    if secret is None:
        secret = pyotp.random_base32()
        user.totp_secret = _fernet().encrypt(secret.encode()).decode()
        user.totp_last_step = None  # the steps used belong to the old secret
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    qr = segno.make(uri, error="m")
    svg = qr.svg_inline(scale=5, border=2, title="QR code for your authenticator app")
    return Enrollment(secret, uri, svg)


def _totp_step(secret: str, code: str) -> int | None:
    """The time step (30 s) whose code this is, within one step either side of now; None
    when it is none of them."""
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // totp.interval  # Unix time's steps (pyotp's at() goes through
    for step in (now, now - 1, now + 1):     # local time, an hour off in a repeated hour)
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _use_totp(user: User, secret: str, code: str) -> bool:
    """Whether `code` is a current code not used before (RFC 6238 5.2: a code that let
    someone in never works again, so one seen over a shoulder or phished is spent). The
    step is taken with one conditional UPDATE, so two logins racing with one code cannot
    both pass."""
    step = _totp_step(secret, code)
    if step is None:
        return False
    taken = db.session.execute(
        update(User).where(User.id == user.id)
        .where(or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    user.totp_last_step = step
    return True


def enable(user: User, code: object) -> list[str]:
    """Turn it on once a code from the app checks out; returns the recovery codes (shown
    once)."""
    secret = _secret(user)
    if user.two_factor_enabled or secret is None:
        raise Conflict("Start again from the Account page.", code="two_factor_not_pending")
    if not _use_totp(user, secret, _normalise(code)):
        raise InvalidInput("That code is not right. Type the 6 digits your app shows now.",
                           code="invalid_code", param="code")
    user.totp_enabled_at = utcnow()
    return new_recovery_codes(user)


def new_recovery_codes(user: User) -> list[str]:
    """Replace the recovery codes with RECOVERY_CODES new ones (returned, shown once)."""
    codes = ["".join(secrets.choice(_CODE_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    user.recovery_codes = [_hash_code(c) for c in codes]
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def verify(user: User, code: object) -> bool:
    """Whether `code` is a current TOTP code or an unused recovery code (then used up)."""
    secret = _secret(user)
    typed = _normalise(code)
    if not user.two_factor_enabled or secret is None or not typed:
        return False
    if _use_totp(user, secret, typed):
        return True
    digest = _hash_code(typed)
    remaining = list(user.recovery_codes or [])
    for stored in remaining:
        if hmac.compare_digest(stored, digest):
            remaining.remove(stored)
            user.recovery_codes = remaining
            return True
    return False


def disable(user: User, password: str) -> None:
    """Turn it off (the password is asked again); not while it is required of the person."""
    accounts.check_password(user, password)
    if required(user):
        raise Conflict("Two-factor authentication is required for your account; it cannot be "
                       "turned off.", code="two_factor_required")
    user.totp_secret, user.totp_enabled_at, user.recovery_codes = None, None, []


def required(user: User) -> bool:
    """Whether the person must use it: staff when configured, or a member of a customer
    whose owner requires it."""
    if user.is_staff:
        return bool(current_app.config.get("STAFF_REQUIRE_TWO_FACTOR"))
    return db.session.scalar(select(Customer.id).join(Membership, Membership.customer_id == Customer.id)
                             .where(Membership.user_id == user.id, Customer.require_two_factor)
                             .limit(1)) is not None


def set_required(actor: Actor, by: User | None, acting_role: str | None, customer: Customer,
                 required_: bool) -> None:
    """An owner requires it of every member (or stops requiring it); audited."""
    members.authorize(acting_role, members.SECURITY)
    if customer.require_two_factor != required_:
        audit.record(actor, "security.two_factor_required", customer_id=customer.id,
                     before={"required": customer.require_two_factor}, after={"required": required_},
                     meta={"by": by.email if by else "an API key"})
    customer.require_two_factor = required_
