"""Idempotency keys, Stripe style: a retried request gets the first answer, never a second run.

`begin` claims (owner, key) by inserting a row, committed as a unit of work of its own
before the request runs; the unique constraint decides which of two concurrent requests
(in any worker, on SQLite or PostgreSQL) runs. The loser gets the stored answer if the
winner has finished, 409 `idempotency_key_in_use` while it runs, or 409
`idempotency_key_reused` if its method, path or body differ. `finish` stores the answer in
the request's transaction (so answer and work commit together, or neither), or deletes the
row on a 5xx so a retry can run. Records live 24 hours: an expired key is free again, and `purge`
(`flask --app app purge-idempotency-keys`, daily) deletes the old rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from extensions import db
from models import IdempotencyRecord
from models.base import utcnow
from services import uow
from services.errors import Conflict, InvalidInput

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
TTL = timedelta(hours=24)
# A request still "running" after this long died with its worker (gunicorn kills a request
# long before); a retry may then take the key over instead of waiting out the TTL.
ABANDONED_AFTER = timedelta(minutes=5)
# Answers larger than this are not kept: the key is released and a retry runs again. Only a
# large /v1/events batch answers that much (one `rejected` item per event), and event ids
# make that retry count nothing twice; a stored copy of it would let a hostile client turn
# junk it sends into disk Tally keeps for a day.
MAX_STORED_BODY = 64 * 1024


@dataclass(frozen=True)
class Stored:
    """The first answer to a request with this key, to send again."""

    status: int
    body: str
    content_type: str
    location: str | None = None


def check_key(value: str) -> str:
    """An Idempotency-Key of 1 to 255 characters, or a 400 naming the header."""
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise InvalidInput(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters.", param=HEADER)
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the request; a JSON body is canonical, so key order and spacing don't count."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to canonicalise
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def begin(owner: str, key: str, request_hash: str, *, now: datetime | None = None) -> int | Stored:
    """Claim `key` for `owner`: the record id to `finish` later, or the stored first answer.

    The claim is a unit of work of its own: the caller commits it before the request runs,
    so a concurrent request with the same key (in any worker) finds it.
    """
    now = now or utcnow()
    # An expired record of this key frees it (the unique index finds it; `purge` the rest).
    db.session.execute(delete(IdempotencyRecord).where(
        IdempotencyRecord.owner == owner, IdempotencyRecord.key == key,
        IdempotencyRecord.created_at < now - TTL))
    dialect = db.session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(IdempotencyRecord)
    claimed = db.session.execute(
        insert.values(owner=owner, key=key, request_hash=request_hash, created_at=now)
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(IdempotencyRecord.id)).scalar_one_or_none()
    if claimed is not None:
        return int(claimed)
    earlier = db.session.execute(select(IdempotencyRecord).where(
        IdempotencyRecord.owner == owner, IdempotencyRecord.key == key)).scalar_one()
    if earlier.request_hash != request_hash:
        raise Conflict(f"This {HEADER} was already used for a different request (another "
                       "path or body). Use a new key for a new request.",
                       code="idempotency_key_reused", param=HEADER)
    if earlier.status is not None:
        return Stored(earlier.status, earlier.body or "", earlier.content_type or "application/json",
                      earlier.location)
    if earlier.created_at < now - ABANDONED_AFTER and _take_over(earlier, now):
        return earlier.id
    raise Conflict(f"A request with this {HEADER} is still running. Retry in a moment with "
                   "the same key to get its answer.", code="idempotency_key_in_use", param=HEADER)


def _take_over(record: IdempotencyRecord, now: datetime) -> bool:
    """Claim an abandoned record; only one of several concurrent retries succeeds."""
    claimed = uow.rows_changed(update(IdempotencyRecord).where(
        IdempotencyRecord.id == record.id, IdempotencyRecord.status.is_(None),
        IdempotencyRecord.created_at < now - ABANDONED_AFTER).values(created_at=now))
    return claimed == 1


def finish(record_id: int, status: int, body: str, content_type: str,
           location: str | None = None) -> None:
    """Store the answer in the request's own transaction, so it commits with the work it
    describes; or release the key on a 5xx (the work was rolled back), or for an answer over
    MAX_STORED_BODY, so a retry runs."""
    if status >= 500 or len(body.encode()) > MAX_STORED_BODY:
        db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    else:
        db.session.execute(update(IdempotencyRecord).where(IdempotencyRecord.id == record_id).values(
            status=status, body=body, content_type=content_type, location=location,
            completed_at=utcnow()))


def stripe_key(purpose: str, *cause: str) -> str:
    """The idempotency key of a Stripe call, derived from what causes it: a Tally id (one
    Stripe customer per Tally customer, one price per plan), or the operation's own
    Idempotency-Key with its credential scope (a retried top-up or Checkout makes the same
    Stripe call, whoever retries). Within Stripe's 255 characters however long the cause."""
    text = "-".join(cause)
    if len(text) > 64:
        text = hashlib.sha256(text.encode()).hexdigest()
    return f"tally-{purpose}-{text}"


def purge(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Delete records older than the TTL (at most `limit`, oldest first, skipping rows
    another run holds); returns how many."""
    cutoff = (now or utcnow()) - TTL
    old = IdempotencyRecord.created_at < cutoff
    if limit is not None:
        old = IdempotencyRecord.id.in_(
            select(IdempotencyRecord.id).where(old).order_by(IdempotencyRecord.id).limit(limit)
            .with_for_update(skip_locked=True).scalar_subquery())
    return int(uow.rows_changed(delete(IdempotencyRecord).where(old)))
