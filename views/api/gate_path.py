"""`POST /v1/authorize` served before Flask routes it, when nothing but the gate is asked.

The gate is the call an API company makes on every request its customers send. Through
Flask it cost about 2.3 ms of worker CPU against 1.3 ms for the least a durable gate can
do (BENCHMARKS.md, "The gate"): the request's hooks, Flask-Limiter's resolution of the
limit, the ORM session and its commit. Here, in front of Flask (WSGI middleware), the
common call is served with the same parts and no more:

- the key from the process's cache (services/identity/key_cache.py), with the role it
  acts with, checked by members.authorize as Flask checks it;
- the body read by the endpoint's own declared model (`AuthorizeRequest`);
- one Redis round trip that takes the rate-limit entry in the very window Flask-Limiter
  uses and confirms the cached key's generation (extensions.OneTripRedisStorage.take);
- one PostgreSQL round trip: the one recording statement of metering
  (services/usage/store.record_call, as batch ingestion and Flask's gate run it) as its
  own transaction (autocommit: no BEGIN, no COMMIT; durable when it answers). Nothing can
  be decided between the statement and its commit, so the statement is all or nothing
  (store.HANDED_TO_FLASK): a new call that a limit refuses, or that reaches a usage alert
  this process has not seen recorded, fails it and leaves nothing behind;
- the answer, `Authorization` as the view builds it, with the headers Flask adds.

Anything else goes to Flask, which answers exactly as it always did: another path or
method, a key not cached yet, a body the model refuses (the 400 comes from Flask) or
without a plain length or over 64 KiB (or MAX_CONTENT_LENGTH), an Idempotency-Key or a
wallet signature (even empty), a cookie (a staff member viewing as a customer is Flask's
to refuse), an account with a price plan (rating may refuse with a 402), a distinct-count
meter, a refused rate limit (the 429), a call the statement refused (the 402, or a new
alert that Flask records and emails), a repeated request id, and any failure of this
path's own (Redis, the database: Flask then answers, in Tally's error shape if it fails
too). When it hands over after taking the
rate-limit entry, Flask's limiter is told (`hand_over`), so the call takes one entry, and
Flask records it with the id this path gave it, so it counts once even if a commit's
answer was lost. After a refusal the account's calls are Flask's for PAUSE_SECONDS: an
over-limit customer retrying costs no failing statement (nor an error line in
PostgreSQL's log) on every call.

Only on PostgreSQL with rate limits in Redis (where keys are cached); elsewhere every
call goes to Flask. tests/test_gate_path.py holds the two to the same answers.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response
from limits import parse
from pydantic import ValidationError
from sqlalchemy import Engine

from extensions import OneTripRedisStorage, db, limiter
from models import Account, ApiKey
from models.base import utcnow
from services.billing import plans
from services.errors import TallyError
from services.identity import key_cache, keys, members
from services.usage import alerts, gate, periods, recording, store
from services.usage.meters import Contribution
from views import headers, request_guard
from views.api import RATE_SCOPE, key_owner, presented_key, rate_limit
from views.api.declare import declared_operation
from views.api.schemas.metering import AuthorizeRequest
from views.api.usage import EVENT_ID_HANDED_OVER, authorization

log = logging.getLogger(__name__)

PATH, ENDPOINT = "/v1/authorize", "api.authorize"
EXTENSION = "tally.gate_path"  # app.extensions: the GatePath (`served` counts its answers)
MAX_BODY = 64 * 1024  # larger bodies (properties) go to Flask, which holds MAX_CONTENT_LENGTH
_LENGTH = re.compile(r"^[0-9]+$")
_FORM = re.compile(r"^\s*(application/x-www-form-urlencoded|multipart/form-data)\s*(;|$)",
                   re.IGNORECASE)
# Present at all, even empty (an empty Idempotency-Key is Flask's 400): Flask's.
_FLASKS_HEADERS = ("HTTP_COOKIE", "HTTP_IDEMPOTENCY_KEY", "HTTP_X_WALLET_AUTH")
_SEEN_ALERTS_MAX = 100_000
PAUSE_SECONDS = 10.0
_PAUSED_MAX = 10_000


class _ToFlask(Exception):
    """Flask serves this call (see the module's docstring)."""

    def __init__(self, handed: tuple[Any, ...] | None = None, event_id: str | None = None,
                 paused: tuple[str, datetime] | None = None) -> None:
        super().__init__()
        self.handed = handed  # the rate-limit entry taken, for Flask's limiter
        self.event_id = event_id  # the id this path gave the call
        self.paused = paused  # (account, period): the statement refused, the account is paused


@dataclass
class _Parts:
    """What the path needs of the app, resolved at its first call."""

    engine: Engine
    kinds: tuple[str, ...]  # the key kinds the endpoint takes (its declaration)
    permission: str  # what the key's role must hold (its declaration)
    storage: OneTripRedisStorage
    cache: key_cache.KeyCache
    prefix: str  # the rate-limit windows' key prefix
    rate_headers: bool  # RATELIMIT_HEADERS_ENABLED
    max_body: int  # larger bodies are Flask's (MAX_BODY, or MAX_CONTENT_LENGTH if smaller)
    headers: dict[bool, list[tuple[str, str]]]  # the fields every answer carries, by HTTPS
    sql: dict[Any, str]  # each recording statement as psycopg's SQL


class GatePath:
    """WSGI middleware in front of the app's routing (see the module's docstring)."""

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self._parts: _Parts | bool | None = False  # False: not resolved yet; None: off
        self.served = 0  # calls this path answered (tests read it)
        # Alert rows (account, meter, threshold, period, limit) known to be recorded: a
        # call that reaches a threshold is Flask's until this process has seen it recorded.
        self._alerts: set[tuple[Any, ...]] = set()
        # Accounts whose last call here was refused by a limit: Flask's for a while (each
        # refusal here costs a statement that fails, and an error in PostgreSQL's log).
        self._paused: dict[str, float] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        parts = self._resolve()
        if parts is None:
            return self.wsgi_app(environ, start_response)
        with self.app.app_context():
            try:
                body, fields = self._serve(parts, environ)
            except _ToFlask as handing:
                to_flask = handing
            except Exception:  # Flask answers (its error, in Tally's shape, if it fails too)
                log.exception("the gate's path failed before taking a rate-limit entry")
                to_flask = _ToFlask()
            else:
                self.served += 1
                start_response("200 OK", fields)
                return [body]
        return self._flask(parts, environ, start_response, to_flask)

    def _flask(self, parts: _Parts, environ: dict[str, Any], start_response: Callable[..., Any],
               handing: _ToFlask) -> Iterable[bytes]:
        if handing.handed is None:
            return self.wsgi_app(environ, start_response)
        environ[EVENT_ID_HANDED_OVER] = handing.event_id
        status: list[str] = []

        def starting(code: str, *args: Any) -> Any:
            status.append(code)
            return start_response(code, *args)

        parts.storage.hand_over(*handing.handed)
        try:
            body = self.wsgi_app(environ, starting)
        finally:
            parts.storage.take_back()
        if handing.paused is not None and status and status[0].startswith("200"):
            # Not refused: it reached an alert threshold, which Flask recorded.
            account_id, period_start = handing.paused
            try:
                self._learn_alerts(parts, account_id, period_start)
                self._paused.pop(account_id, None)
            except Exception:  # Flask answered; this worker learns the alerts another time
                log.exception("could not read the account's recorded usage alerts")
        return body

    def _resolve(self) -> _Parts | None:
        if self._parts is False:
            config = self.app.config
            with self.app.app_context():
                storage, engine = limiter.storage, db.engine
                cache = self.app.extensions.get(key_cache.EXTENSION)
                on = (isinstance(storage, OneTripRedisStorage) and cache is not None
                      and engine.dialect.name == "postgresql" and limiter.enabled
                      and config.get("RATELIMIT_STRATEGY") == "moving-window"
                      and not self.app.debug)  # (jsonify indents in debug)
                # The prefix Flask-Limiter puts in its windows' keys: its first app's
                # RATELIMIT_KEY_PREFIX (one app per process outside the tests).
                prefix = getattr(limiter, "_key_prefix", None) or config.get("RATELIMIT_KEY_PREFIX", "")
                declared = declared_operation(self.app.view_functions[ENDPOINT])
                assert declared is not None and declared.body is AuthorizeRequest \
                    and declared.permission is not None  # what this path reads the call as
                self._parts = _Parts(
                    engine, declared.keys, declared.permission, storage, cache, prefix,
                    bool(config.get("RATELIMIT_HEADERS_ENABLED")),
                    min(MAX_BODY, config.get("MAX_CONTENT_LENGTH") or MAX_BODY),
                    {https: _fields(https) for https in (False, True)}, {}) if on else None
        assert self._parts is not False
        return self._parts

    # The call -----------------------------------------------------------------------

    def _serve(self, parts: _Parts, environ: dict[str, Any]) -> tuple[bytes, list[tuple[str, str]]]:
        """The answer's body and header fields, or _ToFlask."""
        if environ.get("QUERY_STRING") or any(name in environ for name in _FLASKS_HEADERS) \
                or _FORM.match(environ.get("CONTENT_TYPE", "")):
            raise _ToFlask  # (Flask reads any other body as JSON, whatever its type says)
        entry = _cached_key(parts, environ)
        body = _body(environ, parts.max_body)
        key, (role, verified) = entry.key, entry.grant or (None, False)
        account = key.account
        if account is None or account.price_plan_id \
                or self._paused.get(account.id, 0.0) > time.monotonic():
            raise _ToFlask  # rating may refuse (credit, spend cap); or Flask's for now
        now = utcnow()
        try:
            members.authorize(role, parts.permission, email_verified=verified)
            event = gate.event_of(body.event_name, body.quantity, body.id or None,
                                  body.properties or {}, now)
            contribs = gate.contributions(event)
        except TallyError:
            raise _ToFlask from None
        if not contribs or any(c.unique_hash for c in contribs):
            raise _ToFlask  # a distinct count moves only for new values: Flask reads it
        plan = plans.plan_for(account.tier)
        period = periods.month_of(now, account.time_zone)
        rows = recording.rows_for(account, [(event, contribs)])
        statement, params = store.record_call(
            account.id, rows.events, rows.cells, rows.uniques,
            {(m.id, start): limit for m, start, limit, _ in gate.limits(plan, contribs, period)},
            self._alert_at(account, plan, contribs, period))
        handed = _take_rate_limit(parts, key, entry.generation)
        try:
            done = _record(parts, statement, params)
        except Exception as exc:
            if store.HANDED_TO_FLASK not in str(exc):
                log.exception("the gate's path failed; Flask serves the call")
            if len(self._paused) >= _PAUSED_MAX:
                self._paused.clear()
            self._paused[account.id] = time.monotonic() + PAUSE_SECONDS
            raise _ToFlask(handed, event.id, (account.id, period.start)) from None
        try:
            return self._answer(parts, environ, account, plan, contribs, period, done, handed)
        except _ToFlask as handing:
            handing.handed, handing.event_id = handed, event.id
            raise
        except Exception:  # after the commit: Flask answers with the same id (counted once)
            log.exception("the gate's path failed after recording; Flask answers the call")
            raise _ToFlask(handed, event.id) from None

    def _answer(self, parts: _Parts, environ: dict[str, Any], account: Account,
                plan: plans.Plan, contribs: list[Contribution], period: periods.Period,
                done: store.Recorded, handed: tuple[Any, ...]) -> tuple[bytes, list[tuple[str, str]]]:
        """The answer to a recorded call: its body and header fields."""
        if not done.new_ids:  # a repeated request id (nothing was recorded): Flask answers
            raise _ToFlask
        primary = contribs[0].meter
        # Moved by every new event (a limited counter that did not move failed the statement).
        current = next(v for (m, start), (_, v) in done.counters.items()
                       if m == primary.id and start == period.start)
        decision = gate.Decision(account.id, account.tier, current, plan.limit(primary.name))
        body_text = self.app.json.dumps(authorization(decision).model_dump(mode="json", by_alias=True),
                                        separators=(",", ":"))  # as jsonify writes it
        answer = (body_text + "\n").encode()
        fields = [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        if parts.rate_headers:  # as Flask-Limiter adds them
            _, limit, expiry, oldest, count, _ = handed
            fields += [("X-RateLimit-Limit", str(limit)),
                       ("X-RateLimit-Remaining", str(limit - count)),
                       ("X-RateLimit-Reset", str(int(oldest + expiry + 1)))]
        return answer, fields + parts.headers[environ.get("wsgi.url_scheme") == "https"]

    def _alert_at(self, account: Account, plan: plans.Plan, contribs: list[Contribution],
                  period: periods.Period) -> dict[tuple[str, datetime], int]:
        """Each counter's value at which an alert this process has not seen recorded would
        fire (alerts.crossed's rule); the statement hands such a call to Flask."""
        marks: dict[tuple[str, datetime], int] = {}
        for meter in {c.meter for c in contribs}:
            limit = plan.limit(meter.name)
            if not limit:
                continue
            unseen = [alerts.reached_at(limit, t) for t in set(account.alert_thresholds or [])
                      if (account.id, meter.id, t, period.start, limit) not in self._alerts]
            if unseen:
                marks[(meter.id, period.start)] = min(unseen)
        return marks

    def _learn_alerts(self, parts: _Parts, account_id: str, period_start: datetime) -> None:
        """Every alert recorded for the account this period: calls that reach them again
        need not go to Flask."""
        connection = parts.engine.raw_connection()
        try:
            driver = connection.driver_connection
            assert driver is not None
            rows = driver.execute(_RECORDED_ALERTS, (account_id, period_start)).fetchall()
            driver.rollback()
        finally:
            connection.close()
        if len(self._alerts) + len(rows) > _SEEN_ALERTS_MAX:
            self._alerts.clear()
        self._alerts.update((account_id, m, t, period_start, limit) for m, t, limit in rows)


_RECORDED_ALERTS = ('SELECT meter_id, threshold, "limit" FROM usage_alerts '
                    "WHERE account_id = %s AND period_start = %s")


def _record(parts: _Parts, statement: Any, params: dict[str, Any]) -> store.Recorded:
    """The recording statement (all or nothing) as its own transaction: in autocommit, one
    round trip, committed (and on disk) when it answers, rolled back when it fails."""
    sql = parts.sql.get(statement)
    if sql is None:
        sql = parts.sql[statement] = str(statement.compile(dialect=parts.engine.dialect))
    connection = parts.engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None
        driver.autocommit = True
        try:
            return store.recorded(driver.execute(sql, params).fetchone())
        finally:
            try:
                driver.autocommit = False  # as the pool's other users expect it
            except Exception:
                connection.invalidate()
                raise
    finally:
        connection.close()


def _cached_key(parts: _Parts, environ: dict[str, Any]) -> key_cache.Entry:
    """The request's key from this process's cache, with the role it acts with."""
    presented = presented_key(environ.get("HTTP_X_API_KEY", ""),
                              environ.get("HTTP_AUTHORIZATION", "")) or ""
    if not keys.is_well_formed(presented):
        raise _ToFlask
    entry = parts.cache.entries.get(keys.hash_key(presented))
    if entry is None or entry.grant is None or time.time() >= entry.until \
            or entry.key.kind not in parts.kinds:
        raise _ToFlask
    return entry


def _take_rate_limit(parts: _Parts, key: ApiKey, generation: int) -> tuple[Any, ...]:
    """Take the call's entry in Flask-Limiter's own window (one Redis round trip, which
    also confirms the cached key): what to hand over to Flask if it serves the call."""
    item = parse(rate_limit(key))
    window = item.key_for(*([parts.prefix] if parts.prefix else []), key_owner(key), RATE_SCOPE)
    prefixed = parts.storage.prefixed_key(window)
    limit, expiry = item.amount, item.get_expiry()
    acquired, oldest, count, seen = parts.storage.take(prefixed, limit, expiry, 1, generation)
    if acquired != -1:
        parts.cache.last_seen = seen
    if acquired != 1:  # refused (Flask answers the 429), or the key changed: nothing taken
        raise _ToFlask
    return prefixed, limit, expiry, oldest, count, seen


def _fields(https: bool) -> list[tuple[str, str]]:
    """The header fields Flask adds to the gate's answers: the app's (views/headers.py),
    and Vary: Cookie (Flask's session is read: a cookie can change the answer)."""
    response = headers.add(Response(), https=https)
    return [(name, value) for name, value in response.headers.items()
            if name not in ("Content-Type", "Content-Length")] + [("Vary", "Cookie")]


def _body(environ: dict[str, Any], max_body: int) -> AuthorizeRequest:
    """The body as the endpoint's model reads it; _ToFlask (which answers the 400) when it
    is not one. The bytes read are put back for Flask."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    if environ.get("HTTP_TRANSFER_ENCODING") or (not length_text and environ.get("wsgi.input_terminated")):
        raise _ToFlask  # a body without a length: Flask reads it
    if length_text and not _LENGTH.match(length_text):
        raise _ToFlask  # ("+16", "1_6": Werkzeug reads no body there)
    length = int(length_text or "0")
    if length > max_body:
        raise _ToFlask
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    if len(raw) != length:
        raise _ToFlask
    try:
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise _ToFlask
        request_guard.check_json_text(raw, data)
        return AuthorizeRequest.model_validate(data)
    except (ValueError, RecursionError, ValidationError, TallyError):
        raise _ToFlask from None


def init_app(app: Flask) -> None:
    """Put the gate's path in front of the app's routing (before ProxyFix wraps it, so it
    sees the request as the proxy sent it to Flask)."""
    path = GatePath(app, app.wsgi_app)
    app.wsgi_app = path  # type: ignore[method-assign]
    app.extensions[EXTENSION] = path
