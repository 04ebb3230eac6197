"""Customers, accounts and users: sign-up, login, the demo customer and staff users."""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Account, Customer, Membership, User
from models.accounts import ROLE_STAFF
from models.base import utcnow
from models.members import ROLE_OWNER
from services.errors import Conflict, InvalidInput, NotFound, Unauthorized
from services.identity import keys, sessions

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 10
# Argon2's recommended cost, or (the test suite's app config PASSWORD_HASH_CHEAP) its
# cheapest parameters: the same code path, without 0.2 s of CPU per sign-up and login.
_HASHERS = {False: PasswordHasher(), True: PasswordHasher.from_parameters(profiles.CHEAPEST)}
_DUMMY_HASHES: dict[bool, str] = {}


def _hasher() -> PasswordHasher:
    return _HASHERS[bool(current_app.config.get("PASSWORD_HASH_CHEAP"))]


def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a miss costs the same time as a hit."""
    cheap = bool(current_app.config.get("PASSWORD_HASH_CHEAP"))
    if cheap not in _DUMMY_HASHES:
        _DUMMY_HASHES[cheap] = _HASHERS[cheap].hash("not-a-real-password")
    return _DUMMY_HASHES[cheap]

DEMO_EMAIL = "demo@tally.test"
DEMO_PASSWORD = "demo-password-123"


@dataclass(frozen=True)
class SignUp:
    user: User
    account: Account
    api_key: str  # the first key, shown once


def normalise_email(email: str) -> str:
    """The email, trimmed and lowercased, if it looks like one; else a 400 naming `email`."""
    email = (email or "").strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 320:
        raise InvalidInput("Enter a valid email address.", param="email")
    return email


def check_password_rules(password: str) -> None:
    """Refuse a password that is too short or too long (400 naming `password`)."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Use at least {MIN_PASSWORD_LENGTH} characters for the password.", param="password"
        )
    if len(password) > 1024:
        raise InvalidInput("That password is too long (1,024 characters at most).",
                           param="password")


def check_name(name: object) -> str:
    """A company or project name, trimmed: present and at most 200 characters."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("Enter your company or project name.", param="name")
    if len(name) > 200:
        raise InvalidInput("Use at most 200 characters for the name.", param="name")
    return name


def hash_password(password: str) -> str:
    """An Argon2id hash of the password."""
    return _hasher().hash(password)


def sign_up(*, email: str, password: str, name: str, verified: bool = True) -> SignUp:
    """Create a customer, its Free account, its first user and first API key at once (the
    demo and tests; people sign up through services/identity/signup.py, by email)."""
    email = normalise_email(email)
    check_password_rules(password)
    return create_customer_user(email=email, name=check_name(name),
                                password_hash=hash_password(password), verified=verified)


def create_customer_user(*, email: str, name: str, password_hash: str,
                         verified: bool = True) -> SignUp:
    """A customer, its Free account, its first user (its owner) and first API key (the
    caller commits); a Conflict `email_taken` when a user has the email (the unique index
    decides races). `verified`: the email is proven (sign-up's emailed link proves it)."""
    taken = Conflict("An account with this email already exists; log in instead.",
                     code="email_taken", param="email")
    if find_user(email) is not None:
        raise taken
    customer = Customer(name=name, primary_email=email)
    account = Account(customer=customer, name=name,
                      currency=current_app.config["DEFAULT_CURRENCY"])
    user = User(email=email, name=name, password_hash=password_hash, customer=customer,
                email_verified_at=utcnow() if verified else None)
    db.session.add_all([customer, account, user,
                        Membership(customer=customer, user=user, role=ROLE_OWNER)])
    try:
        db.session.flush()
    except IntegrityError:  # the same email, signed up at the same moment
        raise taken from None
    issued = keys.issue_key(account=account, created_by=user)
    return SignUp(user, account, issued.plaintext)


def authenticate(email: str, password: str) -> User:
    """The user these credentials belong to (re-hashed if the hash is outdated); a miss costs the same
    time as a hit."""
    try:
        email = normalise_email(email)
    except InvalidInput:
        email = ""
    user = find_user(email) if email else None
    try:
        _hasher().verify(user.password_hash if user else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = _hasher().hash(password)
    return user


def find_user(email: str) -> User | None:
    """The user with this (normalised) email, or None."""
    return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def get_user(user_id: str) -> User | None:
    """The user with this id, or None."""
    return db.session.get(User, user_id)


def user_for_session(session_id: str) -> User | None:
    """The user a session belongs to (`User.get_id()`: "<id>.<session version>"), or None
    when its version is not the user's current one."""
    user_id, _, version = (session_id or "").rpartition(".")
    user = get_user(user_id) if user_id else None
    if user is None or str(user.session_version or 0) != version:
        return None
    return user


def change_password(user: User, current: str, new: str) -> None:
    """Set a new password after checking the current one; ends every other session (the
    caller starts a fresh one for the person who changed it)."""
    check_password(user, current, param="current_password")
    try:
        check_password_rules(new)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, param="new_password") from None
    if new == current:
        raise InvalidInput("Choose a password different from the current one.",
                           param="new_password")
    user.password_hash = _hasher().hash(new)
    sessions.end_all(user)


def check_password(user: User, password: str, *, param: str = "password") -> None:
    """A 400 `invalid_credentials` naming `param` unless this is the person's password."""
    try:
        _hasher().verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        raise InvalidInput("That is not your current password.", code="invalid_credentials",
                           param=param) from None


def primary_account(user: User) -> Account:
    """The account a customer user works in (a customer usually has one)."""
    if user.customer is None or not user.customer.accounts:
        raise NotFound("This user has no account.", code="no_account")
    return user.customer.accounts[0]


def customer_account(customer_id: str) -> Account:
    """The account a customer's members work in (a customer usually has one)."""
    customer = db.session.get(Customer, customer_id)
    if customer is None or not customer.accounts:
        raise NotFound("This customer has no account.", code="no_account")
    return customer.accounts[0]


def get_account(account_id: str) -> Account:
    """The account with this id, or a 404."""
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound(f"No such account: {account_id}", param="account_id")
    return account


def seed_demo() -> dict[str, str]:
    """Create (or find) the demo customer; issue a fresh key each call."""
    user = find_user(DEMO_EMAIL)
    if user is None:
        signup = sign_up(email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo Co")
        return {"email": DEMO_EMAIL, "password": DEMO_PASSWORD,
                "api_key": signup.api_key, "account_id": signup.account.id}
    account = primary_account(user)
    issued = keys.issue_key(account=account, name="Demo key")
    return {"email": DEMO_EMAIL, "password": DEMO_PASSWORD,
            "api_key": issued.plaintext, "account_id": account.id}


def create_staff(*, email: str, password: str, name: str = "") -> dict[str, str]:
    """Create a support-staff user, or re-key an existing one, and issue a staff key."""
    email = normalise_email(email)
    check_password_rules(password)
    user = find_user(email)
    if user is not None and not user.is_staff:
        raise Conflict("A customer user already has this email.", code="email_taken",
                       param="email")
    if user is None:
        user = User(email=email, name=name or email.split("@")[0], role=ROLE_STAFF,
                    password_hash=_hasher().hash(password))
        db.session.add(user)
    else:
        user.password_hash = _hasher().hash(password)
    db.session.flush()
    issued = keys.issue_key(user=user, name="Staff key")
    return {"email": email, "api_key": issued.plaintext}
