"""`Tally` (sync) and `AsyncTally` (asyncio): the gate call and background ingestion.

Both keep persistent connections (one httpx2 pool per client, reused across calls and
threads), send every call with a timeout, and retry network faults and 5xx with backoff,
resending the same event `id` so a retried call counts once. When Tally cannot be reached
after the retries, the client's policy decides: fail open (serve the call and queue its
event, so it is counted when Tally is back) or fail closed (refuse it).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Self, TypedDict, Unpack

import httpx2 as httpx

from tally_client.batcher import Batcher, DroppedHandler, WireEvent, log_dropped
from tally_client.errors import BufferFull, TallyUnavailable, error_from_answer
from tally_client.models import Decision, Event, Policy, new_id, rfc3339
from tally_client.retries import CALL_RETRIES, NETWORK_ERRORS, GiveUp, Outcome, Retries, Wait, next_step

try:
    VERSION = importlib.metadata.version("tally-client")
except importlib.metadata.PackageNotFoundError:  # run from a source tree
    VERSION = "0"
USER_AGENT = f"tally-client/{VERSION} (python)"
POLICIES: tuple[Policy, ...] = ("open", "closed")


class Options(TypedDict, total=False):
    """Settings shared by `Tally` and `AsyncTally` (see each for defaults)."""

    timeout: float | httpx.Timeout
    retries: Retries
    on_unreachable: Policy
    batch_size: int
    flush_interval: float
    max_buffer: int
    buffer_timeout: float
    close_timeout: float
    on_dropped: DroppedHandler


class _Call(NamedTuple):
    key: str
    request_id: str
    body: dict[str, Any]
    policy: Policy
    at: datetime


class _Client:
    """What the sync and async clients share: settings, request bodies, decisions, ingestion."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float | httpx.Timeout = 2.0,
                 retries: Retries = CALL_RETRIES, on_unreachable: Policy = "open",
                 batch_size: int = 100, flush_interval: float = 1.0, max_buffer: int = 10_000,
                 buffer_timeout: float = 5.0, close_timeout: float = 10.0,
                 on_dropped: DroppedHandler = log_dropped) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retries = retries
        self.on_unreachable: Policy = _policy(on_unreachable)
        self.buffer_timeout = buffer_timeout
        self._batcher = Batcher(self._post_events, batch_size=batch_size,
                                flush_interval=flush_interval, max_buffer=max_buffer,
                                close_timeout=close_timeout, on_dropped=on_dropped)

    # Requests --------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _headers(self, key: str) -> dict[str, str]:
        return {"X-Api-Key": key, "User-Agent": USER_AGENT}

    def _key(self, api_key: str | None) -> str:
        key = api_key or self.api_key
        if not key:
            raise ValueError("No API key: give api_key to the client or to this call.")
        return key

    def _call(self, event_name: str, quantity: int, properties: Mapping[str, Any] | None,
              request_id: str | None, api_key: str | None, on_unreachable: Policy | None) -> _Call:
        body: dict[str, Any] = {"id": request_id or new_id("req"), "event_name": event_name,
                                "quantity": quantity}
        if properties:
            body["properties"] = dict(properties)
        policy = self.on_unreachable if on_unreachable is None else _policy(on_unreachable)
        return _Call(self._key(api_key), body["id"], body, policy, datetime.now(UTC))

    def _conclude(self, call: _Call, step: httpx.Response | GiveUp) -> Decision:
        """Tally's answer as a Decision or a typed error; or, unreachable, the policy's."""
        if isinstance(step, GiveUp):
            return self._unreachable(call, step.last)
        if step.status_code == 200:
            return Decision.from_answer(call.request_id, step.json())
        raise error_from_answer(step.status_code, step.content, step.headers)

    def _unreachable(self, call: _Call, last: Outcome) -> Decision:
        if isinstance(last, httpx.Response):  # a 5xx (next_step gives up on nothing else)
            error = error_from_answer(last.status_code, last.content, last.headers)
            if not isinstance(error, TallyUnavailable):
                raise error
        else:
            error = TallyUnavailable(f"Tally could not be reached: {type(last).__name__}: {last}")
            error.__cause__ = last
        if call.policy == "open":
            # Served without Tally: queue the call's event under the same id, so it is
            # counted once when Tally is back (and not again if the call did get through).
            properties = {**call.body.get("properties", {}), "quantity": call.body["quantity"]}
            event = {"id": call.request_id, "event_name": call.body["event_name"],
                     "timestamp": rfc3339(call.at), "properties": properties}
            try:
                self._batcher.add(call.key, [event], timeout=0)
            except BufferFull as full:
                self._batcher.drop([event], full)
            return Decision(True, call.request_id, "fail_open", error=error)
        error.decision = Decision(False, call.request_id, "fail_closed", error=error)
        raise error

    # Ingestion ---------------------------------------------------------------------------

    def _wire(self, events: Iterable[Event]) -> list[WireEvent]:
        now = datetime.now(UTC)
        wire = []
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(f"ingest takes Event objects, not {type(event).__name__}.")
            wire.append(event.to_json(now))
        return wire

    def _post_events(self, key: str, batch: list[WireEvent]) -> httpx.Response:
        raise NotImplementedError


def _policy(value: str) -> Policy:
    if value not in POLICIES:
        raise ValueError(f"on_unreachable must be 'open' or 'closed', not {value!r}.")
    return "open" if value == "open" else "closed"


class Tally(_Client):
    """A client for Tally's gate and events; safe to share between threads.

    `timeout` (seconds, or an `httpx2.Timeout`) bounds each try; `retries` says how often a
    call is tried (default 3 tries, 50 ms backoff doubling, no waiting on 429);
    `on_unreachable` is the policy when Tally cannot be reached ("open" by default; each
    call may override it). `ingest` batches in the background: `batch_size` events per
    request (at most 1,000), sent at the latest `flush_interval` seconds after the oldest
    arrived; `max_buffer` events wait at most, and `ingest` waits `buffer_timeout` seconds
    for room before raising `BufferFull`. `close()` (also a `with` block's end, and the
    interpreter's exit) sends what is left for at most `close_timeout` seconds; events that
    could not be delivered, or that Tally refused, go to `on_dropped(events, error)`, which
    logs them by default. `http_client` replaces the client's own connection pool (the
    client then leaves it open).
    """

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 http_client: httpx.Client | None = None, **options: Unpack[Options]) -> None:
        super().__init__(base_url, api_key, **options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=self.timeout)

    def authorize(self, event_name: str = "api_call", quantity: int = 1,
                  properties: Mapping[str, Any] | None = None, *, id: str | None = None,
                  api_key: str | None = None, on_unreachable: Policy | None = None) -> Decision:
        """May this call be served? `POST /v1/authorize`: checks the key, the rate limit and the
        plan limits (and prepaid credit), and records the call, in one request.

        Returns a `Decision` when the call may be served; raises `UsageLimitExceeded` (402),
        `RateLimited` (429), `Unauthorized` (401), `Forbidden` (403), `InvalidRequest` (400),
        or `TallyUnavailable` when Tally cannot be reached and the policy is "closed".
        `id` is your request id (one is made when you give none); a retry of the same id is
        answered again (`duplicate`) and counted once. `api_key` is the key to authorize,
        by default the client's (middleware passes the caller's).
        """
        call = self._call(event_name, quantity, properties, id, api_key, on_unreachable)
        step = self._retrying(lambda: self._http.post(
            self._url("/v1/authorize"), json=call.body, headers=self._headers(call.key),
            timeout=self.timeout))
        return self._conclude(call, step)

    def ingest(self, events: Iterable[Event], *, api_key: str | None = None) -> None:
        """Queue usage events for `POST /v1/events`; returns at once, or waits up to
        `buffer_timeout` for room (then `BufferFull`, none of these taken)."""
        wire = self._wire(events)
        if wire:
            self._batcher.add(self._key(api_key), wire, self.buffer_timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Send every queued event now; True once all were delivered (or given to
        `on_dropped`), False if `timeout` seconds passed first (None: however long it takes)."""
        return self._batcher.flush(timeout)

    def close(self) -> None:
        """Send what is queued (for at most `close_timeout`), then close the connections."""
        self._batcher.close()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _retrying(self, send: Callable[[], httpx.Response]) -> httpx.Response | GiveUp:
        attempt = 0
        while True:
            attempt += 1
            outcome: Outcome
            try:
                outcome = send()
            except NETWORK_ERRORS as exc:
                outcome = exc
            step = next_step(self.retries, attempt, outcome)
            if not isinstance(step, Wait):
                return step
            time.sleep(step.seconds)

    def _post_events(self, key: str, batch: list[WireEvent]) -> httpx.Response:
        return self._http.post(self._url("/v1/events"), json={"events": batch},
                               headers=self._headers(key), timeout=self.timeout)


class AsyncTally(_Client):
    """As `Tally`, for asyncio: `await authorize(...)` never blocks the event loop.

    `ingest` never waits: with the buffer full it raises `BufferFull` at once. Batches leave
    from the same background thread as `Tally`'s, on a connection pool of their own.
    `http_client` (an `httpx2.AsyncClient`) replaces the pool `authorize` uses.
    """

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 http_client: httpx.AsyncClient | None = None, **options: Unpack[Options]) -> None:
        super().__init__(base_url, api_key, **options)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout)
        self._events_http: httpx.Client | None = None  # made by the sender thread when needed

    async def authorize(self, event_name: str = "api_call", quantity: int = 1,
                        properties: Mapping[str, Any] | None = None, *, id: str | None = None,
                        api_key: str | None = None, on_unreachable: Policy | None = None) -> Decision:
        """As `Tally.authorize`."""
        call = self._call(event_name, quantity, properties, id, api_key, on_unreachable)
        step = await self._retrying(lambda: self._http.post(
            self._url("/v1/authorize"), json=call.body, headers=self._headers(call.key),
            timeout=self.timeout))
        return self._conclude(call, step)

    def ingest(self, events: Iterable[Event], *, api_key: str | None = None) -> None:
        """Queue usage events; returns at once (`BufferFull` when there is no room)."""
        wire = self._wire(events)
        if wire:
            self._batcher.add(self._key(api_key), wire, 0)

    async def flush(self, timeout: float | None = None) -> bool:
        """As `Tally.flush`, waiting in a worker thread."""
        return await asyncio.to_thread(self._batcher.flush, timeout)

    async def aclose(self) -> None:
        """Send what is queued (for at most `close_timeout`), then close the connections."""
        await asyncio.to_thread(self._batcher.close)
        if self._events_http is not None:
            self._events_http.close()
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _retrying(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response | GiveUp:
        attempt = 0
        while True:
            attempt += 1
            outcome: Outcome
            try:
                outcome = await send()
            except NETWORK_ERRORS as exc:
                outcome = exc
            step = next_step(self.retries, attempt, outcome)
            if not isinstance(step, Wait):
                return step
            await asyncio.sleep(step.seconds)

    def _post_events(self, key: str, batch: list[WireEvent]) -> httpx.Response:
        if self._events_http is None:
            self._events_http = httpx.Client(timeout=self.timeout)
        return self._events_http.post(self._url("/v1/events"), json={"events": batch},
                                      headers=self._headers(key), timeout=self.timeout)
