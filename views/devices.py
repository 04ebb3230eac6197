"""Devices a person has logged in from: a signed cookie, so that login throttling can tell
the owner's own browser from an attacker's.

After a successful login (or sign-up), the browser gets `tally_device`: the user's id and a
random device id, signed with SECRET_KEY, sent only to /login, for a year. An attacker
cannot make one for someone else's account without logging in as them, so a login from a
known device is spared the per-email and per-address limits an attacker elsewhere can
fill (it has its own, per device). The cookie grants nothing else: the password is
checked as always.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Response, current_app, g, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from models import User
from services.errors import InvalidInput
from services.identity import accounts

COOKIE = "tally_device"
LIFETIME = timedelta(days=365)
_SALT = "tally-login-device"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.config["SECRET_KEY"]), salt=_SALT)


def remember(response: Response, user: User) -> Response:
    """Mark this browser as one `user` has logged in from."""
    value = _serializer().dumps({"u": user.id, "d": secrets.token_urlsafe(12)})
    response.set_cookie(COOKIE, value, max_age=int(LIFETIME.total_seconds()), path="/login",
                        httponly=True, samesite="Lax",
                        secure=bool(current_app.config["SESSION_COOKIE_SECURE"] or request.is_secure))
    return response


def _presented() -> dict | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=int(LIFETIME.total_seconds()))
    except BadSignature:
        return None
    return data if isinstance(data, dict) and {"u", "d"} <= data.keys() else None


def known() -> bool:
    """True when this login form names a user who has logged in from this browser before."""
    if "known_device" not in g:
        device = _presented()
        user = None
        if device is not None:
            try:
                user = accounts.find_user(accounts.normalise_email(request.form.get("email") or ""))
            except InvalidInput:
                user = None
        g.known_device = user is not None and user.id == device["u"]
    return bool(g.known_device)


def unknown() -> bool:
    return not known()


def device_key() -> str:
    """The rate-limit key of a known device (its random id, for its user)."""
    device = _presented() or {}
    return f"login-device:{device.get('u')}:{device.get('d')}"
