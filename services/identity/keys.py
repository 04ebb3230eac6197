"""API keys: `tly_` + 40 random base62 characters, shown once, stored as SHA-256.

Every request looks the key up by hash, so a rotation or revocation committed by one
worker is refused by every worker from that moment on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import contains_eager

from extensions import db
from models import Account, ApiKey, User
from models.base import utcnow
from models.keys import KIND_ACCOUNT, KIND_STAFF
from services import uow
from services.errors import InvalidInput, NotFound, Unauthorized
from services.identity import key_cache
from services.notifications import notices
from services.pagination import Page, paginate

KEY_PREFIX = "tly_"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_RE = re.compile(r"^tly_[0-9A-Za-z]{32,64}$")
DISPLAY_PREFIX_LEN = 12  # "tly_" + 8 characters: enough to tell keys apart, useless to an attacker
# Writing last_used_at on every request would make every read a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str  # shown to its owner once, never stored


def _new_plaintext() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(40))


def is_well_formed(plaintext: str) -> bool:
    """Whether this text has a Tally API key's shape (`tly_` and base62)."""
    return bool(_KEY_RE.match(plaintext))


def hash_key(plaintext: str) -> str:
    """The SHA-256 of a key, as keys are stored and looked up."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_key(
    *, account: Account | None = None, user: User | None = None, kind: str = KIND_ACCOUNT,
    name: str = "Default key", created_by: User | None = None, notify: bool = False,
) -> IssuedKey:
    """A new key for an account (account or usage kind) or a staff user; its plaintext is in the answer
    only. An account's key records the member who created it (`created_by`): it acts with
    that member's role (services/identity/members.py). `notify`: email the account's owner a
    security notice (not at sign-up)."""
    if (account is None) == (user is None):
        raise ValueError("a key belongs to an account or to a staff user")
    plaintext = _new_plaintext()
    key = ApiKey(
        kind=KIND_STAFF if user is not None else kind,
        name=name,
        account_id=account.id if account else None,
        user_id=user.id if user else (created_by.id if created_by else None),
        prefix=plaintext[:DISPLAY_PREFIX_LEN],
        key_hash=hash_key(plaintext),
    )
    db.session.add(key)
    db.session.flush()
    if notify and account is not None:
        notices.key_notice(account, name, key.prefix, "created")
    return IssuedKey(key, plaintext)


# The key's account comes in the same query (the gate needs both on every call). Built
# once: building the statement and its loader option on every call cost about 0.2 ms.
_BY_HASH = (select(ApiKey).outerjoin(ApiKey.account).options(contains_eager(ApiKey.account))
            .where(ApiKey.key_hash == bindparam("key_hash")))


def authenticate(plaintext: str | None, *, cached: bool = False) -> ApiKey:
    """The active key for this plaintext (with `key.account` loaded), or Unauthorized.
    Touches last_used_at (at most once a LAST_USED_RESOLUTION).

    `cached`: the key may come from this process's cache (services/identity/key_cache.py),
    detached from the session, to be confirmed by the rate limiter's round trip; for
    requests that only read the key and its account."""
    if not plaintext:
        raise Unauthorized(
            "Send your API key in the X-Api-Key header or as Authorization: Bearer <key>.",
            code="missing_api_key",
        )
    if not is_well_formed(plaintext):
        raise Unauthorized("That is not a Tally API key (they start with tly_).",
                           code="invalid_api_key")
    key_hash = hash_key(plaintext)
    generation = None
    if cached:
        hit = key_cache.get(key_hash)
        if hit is not None:
            return hit
        generation = key_cache.generation_before_read()
    key = db.session.execute(_BY_HASH, {"key_hash": key_hash}).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        key_cache.forget(key_hash)
        raise Unauthorized("This API key is not valid: it was revoked, rotated or never existed.",
                           code="invalid_api_key")
    now = used = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    else:
        used = key.last_used_at
    if cached and generation is not None:
        if key.account is not None:
            db.session.expunge(key.account)
        db.session.expunge(key)
        key_cache.put(key_hash, key, generation, (used + LAST_USED_RESOLUTION).timestamp())
    return key


def kind_of(plaintext: str) -> str | None:
    """The kind of the active key with this plaintext, or None; reads only (the MCP server
    asks which tools to list)."""
    if not _KEY_RE.match(plaintext):
        return None
    key = db.session.execute(_BY_HASH, {"key_hash": hash_key(plaintext)}).scalar_one_or_none()
    return key.kind if key is not None and key.revoked_at is None else None


def list_keys(account_id: str) -> list[ApiKey]:
    """The account's active keys, oldest first."""
    return list(
        db.session.execute(
            select(ApiKey)
            .where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at)
        ).scalars()
    )


def list_page(account_id: str, *, limit: int, starting_after: str | None = None,
              ending_before: str | None = None) -> Page[ApiKey]:
    """The account's active keys, newest first, a page at a time."""
    return paginate(select(ApiKey).where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None)),
                    ApiKey, ApiKey.created_at, limit=limit, starting_after=starting_after,
                    ending_before=ending_before)


def get_account_key(account_id: str, key_id: str) -> ApiKey:
    """The account's active key with this id, or a 404."""
    key = db.session.get(ApiKey, key_id)
    if key is None or key.account_id != account_id or key.revoked_at is not None:
        raise NotFound(f"No such API key: {key_id}", param="key_id")
    return key


def clean_name(name: str | None, kind: str) -> str:
    """The key's name without surrounding spaces; none gives the kind's default name."""
    if name is None or name == "":
        return "Usage key" if kind == "usage" else "Account key"
    if len(name.strip()) > MAX_NAME_LENGTH:
        raise InvalidInput(f"name must be a string of at most {MAX_NAME_LENGTH} characters.",
                           param="name")
    return name.strip()


def revoke(key: ApiKey) -> ApiKey:
    """Refused from the moment this commits, by every worker."""
    db.session.execute(update(ApiKey).where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))
    db.session.refresh(key)
    return key


def rotate(key: ApiKey) -> IssuedKey:
    """Revoke `key` and issue its successor in one transaction.

    The conditional UPDATE makes concurrent rotations of one key safe: only one wins,
    the other finds the key already revoked.
    """
    holder = db.session.get(User, key.user_id) if key.user_id else None
    account = db.session.get(Account, key.account_id) if key.account_id else None
    successor = issue_key(
        account=account, user=holder if account is None else None, kind=key.kind, name=key.name,
        created_by=holder if account is not None else None,
    )
    revoked = uow.rows_changed(
        update(ApiKey)
        .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow(), replaced_by_id=successor.key.id)
    )
    if revoked != 1:
        raise NotFound("This API key was already rotated or revoked.", code="key_revoked")
    owner = db.session.get(Account, key.account_id) if key.account_id else None
    if owner is not None:
        notices.key_notice(owner, key.name, successor.key.prefix, "rotated")
    return successor
