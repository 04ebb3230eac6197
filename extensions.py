"""Flask extensions, created without an app and attached in `create_app()`."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import RedisStorage
from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    pass


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Migrations name plain SQL types, never app classes they would have to import."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl
        tz = "timezone=True" if getattr(impl, "timezone", False) else ""
        return f"sa.{type(impl).__name__}({tz})"
    return False


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate compares the models' tables, not usage_events' partitions (PostgreSQL),
    which the retention job makes and drops (services/usage/retention.py)."""
    from models.usage import is_event_partition

    return not (type_ == "table" and name is not None and is_event_partition(name))


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    """What autogenerate compares: not an index built on PostgreSQL only (`ddl_if`, such as
    the search's trigram index) where the database has none (SQLite)."""
    return not (type_ == "index" and not reflected and compare_to is None
                and getattr(obj, "_ddl_if", None) is not None)


db = SQLAlchemy(model_class=Base)
# Batch mode lets Alembic alter tables on SQLite (copy-and-move) as well as on PostgreSQL.
migrate = Migrate(render_as_batch=True, compare_type=True, render_item=_render_item,
                  include_name=include_name, include_object=include_object)
login_manager = LoginManager()
csrf = CSRFProtect()
# Storage, strategy and headers come from RATELIMIT_* config (Redis when REDIS_URL is set).
limiter = Limiter(key_func=get_remote_address)


# One Redis round trip per rate-limited request ------------------------------------

# limits' own moving-window scripts, run as one: take the entries if the window has room
# (acquire_moving_window.lua), then count the window (moving_window.lua). It also reads the
# API key generation (services/identity/key_cache.py, KEYS[2]): when the request's key was
# cached under another one (ARGV[5]), it takes nothing and says so (-1), and the key is read
# again from the database before the limit is taken.
_ACQUIRE_AND_COUNT = """
local generation = tonumber(redis.call('get', KEYS[2]) or '0')
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= generation then
    return {-1, '0', 0, generation}
end
local timestamp, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local expiry, amount = tonumber(ARGV[3]), tonumber(ARGV[4])
local acquired = 0
if amount <= limit then
    local entry = redis.call('lindex', KEYS[1], limit - amount)
    if not (entry and tonumber(entry) >= timestamp - expiry) then
        for i = 1, amount do redis.call('lpush', KEYS[1], timestamp) end
        redis.call('ltrim', KEYS[1], 0, limit - 1)
        redis.call('expire', KEYS[1], expiry)
        acquired = 1
    end
end
local low, high, index = 0, limit - 1, nil
while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', KEYS[1], mid))
    if value and value >= timestamp - expiry then index = mid; low = mid + 1 else high = mid - 1 end
end
if index then
    return {acquired, tostring(redis.call('lindex', KEYS[1], index)), index + 1, generation}
end
return {acquired, tostring(timestamp), 0, generation}
"""


class KeyGeneration:
    """What the rate limiter's round trip tells the API key cache (set by the app when it
    caches keys): expected() the request's generation, or None; seen(generation,
    confirmed); stale() reads the request's key again."""

    def expected(self) -> int | None:
        return None

    def seen(self, generation: int, *, confirmed: bool) -> None:
        pass

    def stale(self) -> None:
        pass


class OneTripRedisStorage(RedisStorage):
    """limits' Redis storage whose moving-window hit also returns the window's state.

    Flask-Limiter takes an entry (`acquire_entry`) and then, for the X-RateLimit-* and
    Retry-After headers, reads the window (`get_moving_window`): two round trips per
    request. Here the first answers both, and the second is served from what it returned,
    once, in the same thread, within a second. URIs: `tally+redis://...` (and `rediss`,
    `redis+unix`); entries and keys are the same as limits' own `redis://` storage.
    """

    STORAGE_SCHEME = ["tally+redis", "tally+rediss", "tally+redis+unix"]
    _FRESH_FOR = 1.0  # seconds; a request reads its window right after taking its entry

    GENERATION_KEY = "api-key-generation"

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri.removeprefix("tally+"), **options)  # type: ignore[arg-type]
        self._last = threading.local()
        self.keys: KeyGeneration = KeyGeneration()

    def bump_generation(self) -> None:
        """Add one to the API key generation (a key or an account changed)."""
        self.get_connection().incrby(self.prefixed_key(self.GENERATION_KEY), 1)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_acquire_and_count = self.get_connection().register_script(_ACQUIRE_AND_COUNT.encode())

    def take(self, prefixed: str, limit: int, expiry: int, amount: int = 1,
             expected: int | None = None) -> tuple[int, float, int, int]:
        """The one round trip: (1 taken, 0 refused, -1 the cached key's generation
        `expected` moved and nothing was taken; the window's oldest entry; its count; the
        generation). `prefixed`: the window's key with the storage's prefix."""
        acquired, oldest, count, generation = self.lua_acquire_and_count(
            [prefixed, self.prefixed_key(self.GENERATION_KEY)],
            [time.time(), limit, expiry, amount, "" if expected is None else expected])
        return int(acquired), float(oldest), int(count), int(generation)

    def hand_over(self, prefixed: str, limit: int, expiry: int, oldest: float, count: int,
                  generation: int) -> None:
        """An entry this thread took for a request that Flask will now serve (the gate's
        WSGI path, views/api/gate_path.py): its next acquire of that window, in this
        request, takes nothing more and answers with this."""
        self._last.handed = (prefixed, limit, expiry, oldest, count, generation)

    def take_back(self) -> None:
        """Drop what `hand_over` left (the request is over)."""
        self._last.handed = None

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        prefixed = self.prefixed_key(key)
        expected = self.keys.expected()
        handed = getattr(self._last, "handed", None)
        self._last.handed = None
        if handed is not None and handed[:3] == (prefixed, limit, expiry) and amount == 1:
            acquired, oldest, count, generation = 1, handed[3], handed[4], handed[5]
            if expected is not None and expected != generation:
                self.keys.seen(generation, confirmed=False)
                self.keys.stale()
                expected = None
        else:
            acquired, oldest, count, generation = self.take(prefixed, limit, expiry, amount,
                                                            expected)
            if acquired == -1:  # the request's cached key may have changed: read it, then take
                self.keys.seen(generation, confirmed=False)
                self.keys.stale()
                acquired, oldest, count, generation = self.take(prefixed, limit, expiry, amount)
                expected = None
        self.keys.seen(generation, confirmed=expected is not None)
        self._last.window = (prefixed, limit, expiry, time.monotonic(), oldest, count)
        return bool(acquired)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        last = getattr(self._last, "window", None)
        self._last.window = None
        if last is not None and last[:3] == (self.prefixed_key(key), limit, expiry) \
                and time.monotonic() - last[3] < self._FRESH_FOR:
            return last[4], last[5]
        return super().get_moving_window(key, limit, expiry)


# Pinging pooled connections only when they may have gone stale ---------------------

PING_AFTER_IDLE = 1.0  # seconds


def ping_when_idle(engine: Engine, after: float = PING_AFTER_IDLE) -> None:
    """SQLAlchemy's pool_pre_ping, for connections idle `after` seconds or more.

    pool_pre_ping sends `SELECT 1` at every checkout: one of the gate's round trips on
    every call. A connection checked in less than a second ago was working then; one
    idle longer (a database restart, a proxy's idle timeout, a terminated backend) is
    pinged, and replaced if the ping fails (the pool retries the checkout with a new
    connection). A connection that dies within the second fails its request, which
    invalidates the pool's connections as it always did.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["tally_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("tally_checked_in", float("-inf")) < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("ping failed") from exc
