"""A forgotten password, and proving an email address.

Both send a signed link (itsdangerous, keyed by SECRET_KEY) through the outbox. A reset
link carries the user and a fingerprint of their password hash, so it works for
RESET_TTL and dies once used or once the password changes. A verification link carries
the user and the address it was sent to: opening it marks that address verified, or,
for an address the person asked to change to, makes it their email.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from extensions import db
from models import User
from models.base import utcnow
from services.errors import Conflict, InvalidInput
from services.identity import accounts, sessions
from services.notifications import queue_email

RESET_TTL = timedelta(hours=1)
VERIFY_TTL = timedelta(hours=24)
_RESET_SALT = "tally-password-reset"
_VERIFY_SALT = "tally-verify-email"


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt=salt)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


# Password reset ----------------------------------------------------------------------------


def request_reset(email: object, reset_url: Callable[[str], str]) -> None:
    """Email a reset link when `email` has a login; otherwise do nothing. The caller answers
    the same either way."""
    try:
        address = accounts.normalise_email(email if isinstance(email, str) else "")
    except InvalidInput:
        return
    user = accounts.find_user(address)
    if user is None:
        return
    token = _serializer(_RESET_SALT).dumps({"u": user.id, "p": _fingerprint(user)})
    minutes = int(RESET_TTL.total_seconds() // 60)
    queue_email(user.email, "Reset your Tally password",
                "Someone (perhaps you) asked to reset the password of your Tally login.\n\n"
                f"Choose a new password here:\n\n{reset_url(token)}\n\n"
                f"The link works once, for {minutes} minutes. If you did not ask, ignore this "
                "email: your password stays as it is.\n",
                customer_id=user.customer_id)


_BAD_RESET = ("This reset link does not work: it was used, the password changed since, or "
              "it is more than an hour old. Ask for a new one.")


def read_reset(token: object) -> User:
    """The user a valid reset link is for, or a 400 `invalid_reset_link`."""
    try:
        data = _serializer(_RESET_SALT).loads(str(token or ""),
                                              max_age=int(RESET_TTL.total_seconds()))
        user = db.session.get(User, str(data["u"]))
        valid = user is not None and data["p"] == _fingerprint(user)
    except (BadSignature, SignatureExpired, KeyError, TypeError):
        user, valid = None, False
    if user is None or not valid:
        raise InvalidInput(_BAD_RESET, code="invalid_reset_link", param="token")
    return user


def reset_password(token: object, new_password: str) -> User:
    """Set a new password from a valid link (which then stops working) and end every
    session of the person. The link reached the address, so it counts as verified."""
    user = read_reset(token)
    try:
        accounts.check_password_rules(new_password)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, param="new_password") from None
    user.password_hash = accounts.hash_password(new_password)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    sessions.end_all(user)
    return user


# Verified email ----------------------------------------------------------------------------


def send_verification(user: User, verify_url: Callable[[str], str]) -> bool:
    """Email a verification link to the person's unverified address (False: nothing to do)."""
    if user.email_verified:
        return False
    _send_link(user, user.email, verify_url)
    return True


def _send_link(user: User, address: str, verify_url: Callable[[str], str]) -> None:
    token = _serializer(_VERIFY_SALT).dumps({"u": user.id, "e": address})
    queue_email(address, "Verify your email for Tally",
                f"Open this link to verify {address} for your Tally login:\n\n"
                f"{verify_url(token)}\n\nThe link works for 24 hours.\n",
                customer_id=user.customer_id)


def request_email_change(user: User, new_email: object, password: str,
                         verify_url: Callable[[str], str]) -> str:
    """Ask to change the email: a verification goes to the new address and a notice to the
    old one; the change takes effect only when the new address is verified."""
    accounts.check_password(user, password)
    address = accounts.normalise_email(new_email if isinstance(new_email, str) else "")
    if address == user.email:
        raise InvalidInput("That is already your email.", param="email")
    if accounts.find_user(address) is not None:
        raise Conflict("Another Tally login has this email.", code="email_taken", param="email")
    user.pending_email = address
    _send_link(user, address, verify_url)
    queue_email(user.email, "Your Tally email is being changed",
                f"Someone logged in as you asked to change the email of your Tally login to "
                f"{address}. It changes once that address is verified.\n\nIf this was not you, "
                "log in, change your password and check your sessions on the Account page.\n",
                customer_id=user.customer_id)
    return address


_BAD_VERIFY = "This verification link does not work (or is more than 24 hours old). Send a new one."


def verify(token: object) -> User:
    """Mark the address a valid link was sent to as verified (the person's email, or the
    new one they asked for, which then becomes their email)."""
    try:
        data = _serializer(_VERIFY_SALT).loads(str(token or ""),
                                               max_age=int(VERIFY_TTL.total_seconds()))
        user = db.session.get(User, str(data["u"]))
        address = str(data["e"])
    except (BadSignature, SignatureExpired, KeyError, TypeError):
        user, address = None, ""
    if user is None or address not in (user.email, user.pending_email):
        raise InvalidInput(_BAD_VERIFY, code="invalid_verification_link", param="token")
    if address == user.pending_email:
        if accounts.find_user(address) is not None:
            raise Conflict("Another Tally login has this email now.", code="email_taken")
        user.email, user.pending_email = address, None
    user.email_verified_at = utcnow()
    db.session.flush()
    return user
