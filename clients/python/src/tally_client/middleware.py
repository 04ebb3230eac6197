"""WSGI and ASGI middleware: authorize every incoming request by the caller's API key.

Each request's key is read from the configured headers and authorized with Tally before
the app sees it. Allowed requests go on, with the `Decision` (and the caller's key, for
`ingest`) in `environ["tally.decision"]` / `environ["tally.api_key"]` (WSGI) or
`scope["state"]["tally_decision"]` / `["tally_api_key"]` (ASGI; Starlette's
`request.state`). Refused ones are answered here with Tally's own JSON body and status:
401 (no key, or a key Tally does not know), 402, 403, 429 (with Retry-After and the
X-RateLimit headers), and 503 when Tally cannot be reached and the policy is "closed".
Any other error (a 400 `unknown_event_name` from a mistyped event) is the integration's
bug and propagates, so the server logs it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from tally_client.client import AsyncTally, Tally
from tally_client.errors import (
    RATE_LIMIT_HEADERS,
    Forbidden,
    RateLimited,
    TallyError,
    TallyUnavailable,
    Unauthorized,
    UsageLimitExceeded,
)
from tally_client.models import Policy

# The errors answered to the caller; anything else propagates.
ANSWERED = (Unauthorized, Forbidden, UsageLimitExceeded, RateLimited, TallyUnavailable)
DEFAULT_KEY_HEADERS = ("Authorization", "X-Api-Key")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a `meter` callable sees of the incoming request. `headers` are lower-cased;
    `raw` is the WSGI environ or the ASGI scope, for anything else."""

    method: str
    path: str
    headers: Mapping[str, str]
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request costs: the event Tally checks and records. `id`: pass the caller's
    own request id (an Idempotency-Key, say) so the caller's retries count once too."""

    event_name: str = "api_call"
    quantity: int = 1
    properties: Mapping[str, Any] | None = None
    id: str | None = None


Meter = Callable[[RequestInfo], Charge | None]
"""Decides each request's charge; None lets the request through unmetered (a health check)."""


def every_request_one_call(request: RequestInfo) -> Charge:
    return Charge()


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Gate:
    """The part both middlewares share: which key, which charge, which refusal."""

    def __init__(self, meter: Meter, key_headers: Sequence[str], on_unreachable: Policy | None) -> None:
        if not key_headers:
            raise ValueError("key_headers needs at least one header name.")
        self.meter = meter
        self.on_unreachable: Policy | None = on_unreachable
        self.key_headers = tuple(name.lower() for name in key_headers)

    def key(self, headers: Mapping[str, str]) -> str | None:
        """The first key found: `Authorization` counts only with the Bearer scheme."""
        for name in self.key_headers:
            value = headers.get(name, "").strip()
            if name == "authorization":
                scheme, _, value = value.partition(" ")
                value = value.strip() if scheme.lower() == "bearer" else ""
            if value:
                return value
        return None

    def missing_key(self) -> _Answer:
        names = " or ".join("Authorization: Bearer <key>" if n == "authorization" else n
                            for n in self.key_headers)
        return _json_answer(401, {"error": "Unauthorized", "code": "missing_api_key",
                                  "message": f"Send your API key in {names}."})

    @staticmethod
    def refusal(error: TallyError) -> _Answer:
        extra = [(name, error.headers[name]) for name in RATE_LIMIT_HEADERS if name in error.headers]
        return _json_answer(error.status or 503, error.body, extra)


def _json_answer(status: int, body: Mapping[str, Any], extra: Iterable[tuple[str, str]] = ()) -> _Answer:
    content = json.dumps(body).encode()
    return _Answer(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(content))), *extra], content)


class WSGIMiddleware:
    """Wraps a WSGI app (Flask: `app.wsgi_app = WSGIMiddleware(app.wsgi_app, tally)`).

    `meter(request)` gives each request's `Charge` (default: one `api_call`) or None to let
    it through unmetered. `key_headers`: where callers put their key, first found wins
    (default `Authorization: Bearer` then `X-Api-Key`). `on_unreachable` overrides the
    client's policy for these calls.
    """

    def __init__(self, app: WSGIApplication, tally: Tally, *, meter: Meter = every_request_one_call,
                 key_headers: Sequence[str] = DEFAULT_KEY_HEADERS,
                 on_unreachable: Policy | None = None) -> None:
        self.app, self.tally = app, tally
        self.gate = _Gate(meter, key_headers, on_unreachable)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = {name[5:].replace("_", "-").lower(): value for name, value in environ.items()
                   if name.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):  # the two headers WSGI keeps apart
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = environ[name]
        charge = self.gate.meter(RequestInfo(environ.get("REQUEST_METHOD", "GET"),
                                             environ.get("PATH_INFO", "/"), headers, environ))
        if charge is None:
            return self.app(environ, start_response)
        key = self.gate.key(headers)
        if key is None:
            return _wsgi_answer(start_response, self.gate.missing_key())
        try:
            decision = self.tally.authorize(charge.event_name, charge.quantity, charge.properties,
                                            id=charge.id, api_key=key,
                                            on_unreachable=self.gate.on_unreachable)
        except ANSWERED as error:
            return _wsgi_answer(start_response, self.gate.refusal(error))
        environ["tally.decision"], environ["tally.api_key"] = decision, key
        return self.app(environ, start_response)


def _wsgi_answer(start_response: StartResponse, answer: _Answer) -> list[bytes]:
    start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", answer.headers)
    return [answer.body]


class ASGIMiddleware:
    """Wraps an ASGI app (Starlette, FastAPI, Quart...) with an `AsyncTally`; the options
    are `WSGIMiddleware`'s. HTTP requests only: WebSocket and lifespan pass through."""

    def __init__(self, app: ASGIApp, tally: AsyncTally, *, meter: Meter = every_request_one_call,
                 key_headers: Sequence[str] = DEFAULT_KEY_HEADERS,
                 on_unreachable: Policy | None = None) -> None:
        self.app, self.tally = app, tally
        self.gate = _Gate(meter, key_headers, on_unreachable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers", [])}
        charge = self.gate.meter(RequestInfo(scope.get("method", "GET"), scope.get("path", "/"),
                                             headers, scope))
        if charge is None:
            await self.app(scope, receive, send)
            return
        key = self.gate.key(headers)
        if key is None:
            await _asgi_answer(send, self.gate.missing_key())
            return
        try:
            decision = await self.tally.authorize(charge.event_name, charge.quantity, charge.properties,
                                                  id=charge.id, api_key=key,
                                                  on_unreachable=self.gate.on_unreachable)
        except ANSWERED as error:
            await _asgi_answer(send, self.gate.refusal(error))
            return
        state = {**scope.get("state", {}), "tally_decision": decision, "tally_api_key": key}
        await self.app({**scope, "state": state}, receive, send)


async def _asgi_answer(send: Send, answer: _Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]})
    await send({"type": "http.response.body", "body": answer.body})
