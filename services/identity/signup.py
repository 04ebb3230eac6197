"""Sign-up that never says whether an email already has an account.

`request` answers the same for every valid form: it queues one email (the outbox sends it
after the commit) and creates nothing. A new address gets a link to finish creating the
account; an address that already has one gets a note saying so (someone tried to sign up
with it), so the real owner learns of it and nobody else does. The link carries the
sign-up itself (email, name, password hash), encrypted and authenticated with a key
derived from SECRET_KEY, for TOKEN_TTL: an unconfirmed sign-up is no account, no user.
`complete` creates the account from a valid link, once.

Sign-up needs email delivery (SMTP_URL): without it, `request` refuses every address
alike.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from services.errors import InvalidInput, Unavailable
from services.identity import accounts
from services.notifications import email_configured, queue_email

TOKEN_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Pending:
    """A sign-up read back from its link."""

    email: str
    name: str
    password_hash: str


def _fernet() -> Fernet:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"tally-signup\0" + secret).digest()))


def request(*, email: object, password: object, name: object, confirm_url: Callable[[str], str],
            login_url: str) -> str:
    """Check the form, then email the address; returns the normalised email. The same
    for every valid form: the account is created only from the link (`complete`)."""
    if not email_configured():
        raise Unavailable("Sign-up is not available: this Tally sends no email (SMTP_URL), and "
                          "signing up proves by email that the address is yours. Ask the "
                          "operator for an account.", code="email_not_configured")
    email_ = accounts.normalise_email(email if isinstance(email, str) else "")
    password_ = password if isinstance(password, str) else ""
    accounts.check_password_rules(password_)
    name_ = accounts.check_name(name)
    password_hash = accounts.hash_password(password_)  # for a taken address too: same time
    if accounts.find_user(email_) is not None:
        queue_email(email_, "Someone tried to sign up to Tally with your email",
                    "Someone (perhaps you) tried to create a Tally account with this email "
                    "address. You already have an account, so nothing was created and "
                    "nothing was changed.\n\n"
                    f"Log in here: {login_url}\n\n"
                    "If it was not you, you can ignore this email.\n")
        return email_
    token = _fernet().encrypt(json.dumps(
        {"e": email_, "n": name_, "h": password_hash}).encode()).decode()
    hours = int(TOKEN_TTL.total_seconds() // 3600)
    queue_email(email_, "Finish creating your Tally account",
                f"Open this link to finish creating the Tally account for {name_}:\n\n"
                f"{confirm_url(token)}\n\n"
                f"The link works for {hours} hours. If you did not sign up, ignore this email: "
                "no account is created without it.\n")
    return email_


def read(token: object) -> Pending:
    """The sign-up a link carries; InvalidInput when it was altered or is too old."""
    try:
        data = json.loads(_fernet().decrypt(str(token or "").encode(),
                                            ttl=int(TOKEN_TTL.total_seconds())))
        return Pending(str(data["e"]), str(data["n"]), str(data["h"]))
    except (InvalidToken, ValueError, KeyError, TypeError):
        raise InvalidInput("This link is not valid or has expired (links work for 24 hours). "
                           "Sign up again to get a new one.", code="invalid_signup_link",
                           param="token") from None


def complete(token: object) -> accounts.SignUp:
    """Create the account a valid link carries (a Conflict `email_taken` once it exists)."""
    pending = read(token)
    return accounts.create_customer_user(email=pending.email, name=pending.name,
                                         password_hash=pending.password_hash)
