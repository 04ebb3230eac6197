"""When to try a request again, and how long to wait first.

The decision is kept apart from the sending, so the sync client, the async client and the
background sender follow one rule. Every retry sends the same body, so the same event
`id`: Tally counts a call or an event once, however many times it arrives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

import httpx2 as httpx

from tally_client.errors import parse_retry_after

# Answers worth another try: Tally or something in front of it failed, not the request.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Faults on the way: nothing came back, or not all of it. (Not a bad URL or a TLS setup error.)
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)

Outcome = httpx.Response | Exception


@dataclass(frozen=True, slots=True)
class Retries:
    """How a request is retried.

    `attempts`: tries in all (None: until it succeeds; background ingestion only).
    `backoff`: the first wait in seconds, doubled each time up to `max_backoff`, with jitter.
    `max_wait`: the longest Retry-After (on 429 or 503) worth waiting for. A 429 that asks
    for longer is the answer (`RateLimited`); a 503 that does counts as Tally unreachable.
    """

    attempts: int | None = 3
    backoff: float = 0.05
    max_backoff: float = 1.0
    max_wait: float = 0.0

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1 (or None).")
        if min(self.backoff, self.max_backoff, self.max_wait) < 0:
            raise ValueError("backoff, max_backoff and max_wait must not be negative.")

    def delay(self, attempt: int) -> float:
        """The backoff after the `attempt`-th try: half fixed, half random, so many clients
        that lost Tally at the same moment do not all come back at the same moment."""
        step = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)


# The rule for calls made inside a caller's request: a few quick tries, no waiting on 429.
CALL_RETRIES = Retries()
# The rule for background batches: until delivered (or the client closes), any Retry-After.
BACKGROUND_RETRIES = Retries(attempts=None, backoff=0.5, max_backoff=30.0, max_wait=float("inf"))


class Wait(NamedTuple):
    seconds: float


class GiveUp(NamedTuple):
    """Tally could not be reached: the last answer (a 5xx) or the last network fault."""

    last: Outcome


def next_step(retries: Retries, attempt: int, outcome: Outcome) -> httpx.Response | Wait | GiveUp:
    """After the `attempt`-th try: the answer to act on, a wait before the next try, or
    giving up. Exceptions other than network faults are not passed here: they propagate."""
    retry_after: int | None = None
    if isinstance(outcome, httpx.Response):
        status = outcome.status_code
        if status != 429 and status not in RETRY_STATUSES:
            return outcome
        retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
        if status == 429 and (retry_after is None or retry_after > retries.max_wait):
            return outcome
        if retry_after is not None and retry_after > retries.max_wait:
            return GiveUp(outcome)
    if retries.attempts is not None and attempt >= retries.attempts:
        return outcome if isinstance(outcome, httpx.Response) and outcome.status_code == 429 \
            else GiveUp(outcome)
    return Wait(max(retries.delay(attempt), retry_after or 0))
