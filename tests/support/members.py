"""A member of a customer with a given role, with a login and an API key of their own."""

from __future__ import annotations

from flask import Flask

from extensions import db
from models import Account, User
from models.base import utcnow
from services import uow
from services.identity import accounts, keys, members
from tests.conftest import PASSWORD, Customer

_HASHES: dict[str, str] = {}


def _password_hash() -> str:
    """One Argon2 hash for every member these tests make (hashing is slow on purpose)."""
    if PASSWORD not in _HASHES:
        _HASHES[PASSWORD] = accounts.hash_password(PASSWORD)
    return _HASHES[PASSWORD]


def add_member(app: Flask, account_id: str, role: str, email: str | None = None,
               *, verified: bool = True) -> Customer:
    """A person joined to the account's customer with `role` (as an accepted invitation
    would), and an account key they created (it acts with their role)."""
    with app.app_context():
        with uow.unit():
            account = db.session.get(Account, account_id)
            assert account is not None
            address = email or f"{role}-{account_id[-6:].lower()}@example.com"
            user = accounts.find_user(address)
            if user is None:
                user = User(email=address, name=role.capitalize(),
                            password_hash=_password_hash())
                db.session.add(user)
                db.session.flush()
            if verified:
                user.email_verified_at = utcnow()
            members.add_member(account.customer, user, role)
            issued = keys.issue_key(account=account, created_by=user, name=f"{role} key")
        db.session.remove()
    return Customer(address, PASSWORD, account_id, issued.plaintext)
