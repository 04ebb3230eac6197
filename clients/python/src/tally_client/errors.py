"""Typed failures: one class per answer a caller branches on, each carrying Tally's body."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from tally_client.models import RejectedEvent, Usage

if TYPE_CHECKING:
    from tally_client.models import Decision

# Headers of a refusal worth passing on to whoever called the API company's API.
RATE_LIMIT_HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


class TallyError(Exception):
    """Tally answered with an error: `{"error", "code", "message", "param"?}` and its status.

    `body` is Tally's JSON as sent (extra fields included); `headers` holds its rate-limit
    headers, if any.
    """

    def __init__(self, status: int | None, body: Mapping[str, Any],
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body: dict[str, Any] = dict(body)
        self.headers: dict[str, str] = dict(headers or {})
        self.error: str = str(self.body.get("error", ""))
        self.code: str = str(self.body.get("code", ""))
        self.message: str = str(self.body.get("message", ""))
        self.param: str | None = self.body.get("param")
        super().__init__(f"{status} {self.code}: {self.message}" if status else self.message)


class InvalidRequest(TallyError):
    """400 (and other 4xx without a class of their own): the request itself is wrong,
    e.g. `unknown_event_name`. Retrying it will not help."""


class Unauthorized(TallyError):
    """401: no key, or a key Tally does not know (revoked, rotated, never existed)."""


class Forbidden(TallyError):
    """403: the key is of the wrong kind for this endpoint (`key_scope`)."""


class UsageLimitExceeded(TallyError):
    """402 `usage_limit_exceeded`: over a plan limit, out of prepaid credit or over the
    spend cap. Nothing was recorded. `usage` and `upgrade_url` come from Tally's body."""

    @property
    def usage(self) -> Usage | None:
        usage = self.body.get("usage")
        return Usage(usage["current"], usage.get("limit")) if isinstance(usage, dict) else None

    @property
    def upgrade_url(self) -> str | None:
        return self.body.get("upgrade_url")


class RateLimited(TallyError):
    """429: over the plan's requests per minute. `retry_after` is Tally's Retry-After."""

    @property
    def retry_after(self) -> int | None:
        return parse_retry_after(self.headers.get("Retry-After"))


class TallyUnavailable(TallyError):
    """Tally could not be reached (connection refused, timeouts, 5xx) after the retries.

    Raised by `authorize` under the fail-closed policy, with `decision` saying so; `status`
    is the last HTTP status seen (None when no answer came); the last fault is `__cause__`.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 body: Mapping[str, Any] | None = None, decision: Decision | None = None) -> None:
        super().__init__(status, body or {"error": "Service unavailable",
                                          "code": "tally_unavailable", "message": message})
        self.decision = decision


class EventsRejected(TallyError):
    """Some events of a batch were refused one by one (the rest counted); `rejected` says
    which and why. Given to `on_dropped`, never raised at the caller."""

    def __init__(self, rejected: tuple[RejectedEvent, ...]) -> None:
        super().__init__(200, {"error": "Events rejected", "code": "events_rejected",
                               "message": "; ".join(f"{r.id}: {r.code}" for r in rejected)})
        self.rejected = rejected


class BufferFull(TallyError):
    """`ingest` found the bounded buffer full (Tally slow or unreachable) and could not wait
    for room; none of the events given to that call were taken."""

    def __init__(self, message: str) -> None:
        super().__init__(None, {"error": "Buffer full", "code": "buffer_full", "message": message})


_BY_STATUS: dict[int, type[TallyError]] = {401: Unauthorized, 402: UsageLimitExceeded,
                                           403: Forbidden, 429: RateLimited}


def parse_retry_after(value: str | None) -> int | None:
    """Seconds from a Retry-After header: whole seconds (as Tally sends) or an HTTP date (as
    some load balancers do)."""
    if value is None:
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, math.ceil((when - datetime.now(UTC)).total_seconds()))


def error_from_answer(status: int, content: bytes, headers: Mapping[str, str]) -> TallyError:
    """The typed error for one of Tally's error answers (or a proxy's, which may not be JSON)."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = content[:200].decode("utf-8", "replace").strip()
        body = {"error": "HTTP error", "code": f"http_{status}", "message": text or f"HTTP {status}"}
    kept = {name: headers[name] for name in RATE_LIMIT_HEADERS if name in headers}
    if status >= 500:
        return TallyUnavailable(str(body.get("message", "")), status=status, body=body)
    return _BY_STATUS.get(status, InvalidRequest)(status, body, kept)
