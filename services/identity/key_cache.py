"""A per-process cache of API keys for the gate, exact across workers.

Every gate call used to read its key and account from PostgreSQL, so that a key revoked
or rotated by one worker is refused by every worker at once. Here each process keeps the
keys it has seen, and a **generation** number in Redis says whether they are still good:

- Every commit that changes an API key (revoked, rotated, deleted), what the gate reads
  of an account (its tier, time zone, price plan, spend cap, alert thresholds...; not its
  balance, which the gate reads in SQL), a membership (the role a key acts with is its
  creator's) or a user's verified email adds one to the generation (`bump`, from the
  session's after-commit hook, so before the call that made the change returns).
- The rate limiter's one Redis round trip (extensions.OneTripRedisStorage) also reads the
  generation, and compares it with the one the cached key was read under: if they differ
  it takes no rate-limit entry, and the key is read again from PostgreSQL (a revoked key
  is then a 401, as before).
- A key enters the cache under the generation seen *before* it was read from the
  database, so a change committed while it was being read is caught too.
- An entry lasts at most LAST_USED_RESOLUTION after the key's `last_used_at`: then the
  database read, which also touches `last_used_at`, happens again. That also bounds how
  long a change made outside the app (by hand, in SQL) can go unseen.

One call is served under the old values after a plan change: the call that finds the
generation moved still takes its rate-limit entry against the limit resolved from the
cached account (the entry is taken; only its ceiling is the old plan's). Limits, caps and
credit are read in SQL or from the account read again, so they are exact.

Only endpoints that read the key and its account (never change them) use the cache
(views/api: the gate and event ingestion), and only when the rate limiter stores its
windows in Redis (several processes share it); anywhere else every request reads its key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import InstanceState, ORMExecuteState, Session, SessionTransaction

from models import Account, ApiKey, Membership, User

log = logging.getLogger(__name__)

# Account columns the gate never reads from the cached account (money moves in SQL).
_NOT_CACHED = frozenset({"balance", "pending_usage"})
_CHANGED = "tally_keys_changed"  # session.info: this transaction changed a key or an account
EXTENSION = "tally.key_cache"  # app.extensions: the KeyCache
_MAX_ENTRIES = 10_000


Grant = tuple[str | None, bool]  # the role a key acts with, and whether its creator's email is verified


@dataclass
class Entry:
    generation: int  # the generation the key was read under
    until: float  # a Unix time
    key: ApiKey  # detached, with its account
    grant: Grant | None = None  # its creator's role, once the gate has read it


class KeyCache:
    """One app's cached keys (app.extensions), and how to move the generation in Redis."""

    def __init__(self, bumper: Callable[[], None], reload: Callable[[], None]) -> None:
        self.bumper, self.reload = bumper, reload
        self.entries: dict[str, Entry] = {}  # by key hash
        self.last_seen: int | None = None  # the newest generation any thread here has read


def enable(app: Flask, bumper: Callable[[], None], reload: Callable[[], None]) -> None:
    """Cache keys in this app (when its rate limits live in Redis): `bumper` adds one to
    the generation in Redis, `reload` reads the current request's key from the database
    again (the rate limiter calls it when the generation moved)."""
    app.extensions[EXTENSION] = KeyCache(bumper, reload)


def _cache() -> KeyCache | None:
    if not has_app_context():
        return None
    cache: KeyCache | None = current_app.extensions.get(EXTENSION)
    return cache


def enabled() -> bool:
    """Whether this app caches keys."""
    return _cache() is not None


def get(key_hash: str) -> ApiKey | None:
    """The cached key for this hash, to be confirmed by the rate limiter's round trip; or
    None. Records the generation the request expects."""
    cache = _cache()
    entry = cache.entries.get(key_hash) if cache is not None else None
    if cache is None or entry is None:
        return None
    if time.time() >= entry.until:
        cache.entries.pop(key_hash, None)
        return None
    g.key_generation = entry.generation
    return entry.key


def generation_before_read() -> int | None:
    """The generation to cache a key under that is about to be read from the database."""
    cache = _cache()
    return cache.last_seen if cache is not None else None


def put(key_hash: str, key: ApiKey, generation: int | None, until: float) -> None:
    """Keep `key` (detached, with its account) until `until` (a Unix time)."""
    cache = _cache()
    if cache is None or generation is None:
        return
    if len(cache.entries) >= _MAX_ENTRIES:
        cache.entries.clear()
    cache.entries[key_hash] = Entry(generation, until, key)


def _entry_of(key: ApiKey) -> Entry | None:
    cache = _cache()
    entry = cache.entries.get(key.key_hash) if cache is not None else None
    return entry if entry is not None and entry.key is key else None


def grant(key: ApiKey) -> Grant | None:
    """The role (and verified email) kept with this cached key, or None: read it."""
    entry = _entry_of(key)
    return entry.grant if entry is not None else None


def keep_grant(key: ApiKey, value: Grant) -> None:
    """Keep the role read for this cached key, under the key's own generation: a change of
    memberships or of a user's verified email moves the generation like a key's change."""
    entry = _entry_of(key)
    if entry is not None:
        entry.grant = value


def forget(key_hash: str) -> None:
    """Drop a key from this process's cache."""
    cache = _cache()
    if cache is not None:
        cache.entries.pop(key_hash, None)


def expected() -> int | None:
    """The generation the request's cached key was read under (None: it is not cached)."""
    if not has_app_context():
        return None
    value: int | None = g.get("key_generation")
    return value


def seen(generation: int, *, confirmed: bool) -> None:
    """The rate limiter's round trip read `generation`; `confirmed`: it is the one the
    request's cached key was read under, so the key is good."""
    cache = _cache()
    if cache is None:
        return
    cache.last_seen = generation
    if confirmed:
        g.key_confirmed = True


def stale() -> None:
    """The generation moved since the request's cached key was read: read it again."""
    cache = _cache()
    g.pop("key_generation", None)
    if cache is not None:
        cache.entries.clear()
        cache.reload()


def confirmed() -> bool:
    """Whether the rate limiter confirmed the request's cached key."""
    return bool(g.get("key_confirmed"))


def bump() -> None:
    """Add one to the generation: every process drops its cached keys at its next call."""
    cache = _cache()
    if cache is None:
        return
    cache.entries.clear()
    for attempt in (1, 2):  # a blip in Redis gets one more try
        try:
            cache.bumper()
            return
        except Exception:  # Redis down: the limiter's round trip fails too, so no key is served
            if attempt == 2:
                # Redis answered the others' round trips but not this: other processes keep
                # their cached keys (and roles) at most LAST_USED_RESOLUTION longer.
                log.exception("could not move the API key generation in Redis")


# Tracking changes --------------------------------------------------------------------


_WATCHED: dict[type, str] = {ApiKey: "api_keys", Account: "accounts",
                             Membership: "memberships", User: "users"}


def _changes_gate_columns(table: str, columns: set[str]) -> bool:
    if table == "api_keys":
        return bool(columns - {"last_used_at"})  # a key's use is not a change of the key
    if table == "accounts":
        return bool(columns - _NOT_CACHED)
    if table == "users":
        return "email_verified_at" in columns  # a key's creator must be verified to pay
    return table == "memberships"  # a key acts with its creator's role


@event.listens_for(Session, "do_orm_execute")
def _track_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table: str = getattr(getattr(state.statement, "table", None), "name", "")
    if table not in _WATCHED.values() or (state.is_insert and table != "memberships"):
        return
    values: dict[Any, Any] = getattr(state.statement, "_values", None) or {}
    columns = {getattr(c, "key", str(c)) for c in values}
    if not state.is_update or not columns or _changes_gate_columns(table, columns):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "before_flush")
def _track_flush(session: Session, flush_context: Any, instances: Any) -> None:
    if any(isinstance(obj, Membership) for obj in session.new):
        session.info[_CHANGED] = True
    for obj in session.deleted:
        if type(obj) in _WATCHED:
            session.info[_CHANGED] = True
    for obj in session.dirty:
        table = _WATCHED.get(type(obj))
        if table is not None:
            state: InstanceState[Any] = inspect(obj)
            columns = {c.key for c in state.mapper.column_attrs}  # not relationships
            changed = {a.key for a in state.attrs if a.key in columns and a.history.has_changes()}
            if _changes_gate_columns(table, changed):
                session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _bump_after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        bump()


@event.listens_for(Session, "after_transaction_end")
def _forget_change(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CHANGED, None)
