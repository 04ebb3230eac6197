"""Flask extensions, created without an app and attached in `create_app()`."""

from __future__ import annotations

import threading
import time

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from limits.storage import RedisStorage
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


db = SQLAlchemy(model_class=Base)
# Batch mode lets Alembic alter tables on SQLite (copy-and-move) as well as on PostgreSQL.
migrate = Migrate(render_as_batch=True, compare_type=True, render_item=_render_item)
login_manager = LoginManager()
csrf = CSRFProtect()
# Storage, strategy and headers come from RATELIMIT_* config (Redis when REDIS_URL is set).
limiter = Limiter(key_func=get_remote_address)


# One Redis round trip per rate-limited request ------------------------------------

# limits' own moving-window scripts, run as one: take the entries if the window has room
# (acquire_moving_window.lua), then count the window (moving_window.lua).
_ACQUIRE_AND_COUNT = """
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
    return {acquired, tostring(redis.call('lindex', KEYS[1], index)), index + 1}
end
return {acquired, tostring(timestamp), 0}
"""


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

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri.removeprefix("tally+"), **options)  # type: ignore[arg-type]
        self._last = threading.local()

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_acquire_and_count = self.get_connection().register_script(_ACQUIRE_AND_COUNT.encode())

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        prefixed = self.prefixed_key(key)
        acquired, oldest, count = self.lua_acquire_and_count(
            [prefixed], [time.time(), limit, expiry, amount])
        self._last.window = (prefixed, limit, expiry, time.monotonic(), float(oldest), int(count))
        return bool(acquired)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        last = getattr(self._last, "window", None)
        self._last.window = None
        if last is not None and last[:3] == (self.prefixed_key(key), limit, expiry) \
                and time.monotonic() - last[3] < self._FRESH_FOR:
            return last[4], last[5]
        return super().get_moving_window(key, limit, expiry)
