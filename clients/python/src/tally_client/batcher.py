"""Background batching for `ingest`: a bounded buffer, one sender thread, flush on exit.

Events wait in the buffer, grouped by the API key they are sent with, until a group has
`batch_size` of them, the oldest has waited `flush_interval`, or someone flushes. The
thread sends one batch at a time and retries it until Tally takes it (the event ids make a
resent batch count once). While Tally is away the buffer fills; a full buffer makes
`ingest` wait for room, then raise `BufferFull`. Closing (also at interpreter exit) sends
what is left, for at most `close_timeout` seconds; what could not be sent is handed to
`on_dropped`, as are events Tally refused.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2 as httpx

from tally_client.errors import BufferFull, EventsRejected, TallyError, TallyUnavailable, error_from_answer
from tally_client.models import IngestResult
from tally_client.retries import BACKGROUND_RETRIES, NETWORK_ERRORS, GiveUp, Outcome, Wait, next_step

log = logging.getLogger("tally_client")

WireEvent = dict[str, Any]
Post = Callable[[str, list[WireEvent]], httpx.Response]
DroppedHandler = Callable[[list[WireEvent], TallyError], None]

MAX_BATCH = 1000  # Tally takes at most this many events a request


def log_dropped(events: list[WireEvent], error: TallyError) -> None:
    """The default `on_dropped`: say how many events were lost and why (never the key)."""
    log.error("tally_client: %d usage events not recorded (%s); first ids: %s", len(events), error,
              ", ".join(str(e.get("id")) for e in events[:5]))


class Batcher:
    def __init__(self, post: Post, *, batch_size: int, flush_interval: float, max_buffer: int,
                 close_timeout: float, on_dropped: DroppedHandler) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH}.")
        if max_buffer < batch_size:
            raise ValueError("max_buffer must hold at least one batch.")
        self._post, self._on_dropped = post, on_dropped
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.max_buffer, self.close_timeout = max_buffer, close_timeout
        self._cond = threading.Condition()
        self._pending: dict[str, list[WireEvent]] = {}  # by API key, in arrival order
        self._count = 0  # events pending
        self._in_flight = 0  # events taken by the thread, not yet delivered or dropped
        self._oldest: float | None = None  # when the oldest pending event arrived
        self._flushing = 0  # callers waiting in flush(): send without waiting for a full batch
        self._deadline: float | None = None  # set by close(): give up sending after this
        self._thread: threading.Thread | None = None

    # The caller's side ----------------------------------------------------------------

    def add(self, key: str, events: list[WireEvent], timeout: float) -> None:
        """Take all of `events` or none: wait up to `timeout` seconds for room."""
        if len(events) > self.max_buffer:
            raise ValueError(f"At most {self.max_buffer} events fit in the buffer; send fewer at once.")
        with self._cond:
            if self._deadline is not None:
                raise RuntimeError("This Tally client is closed.")
            if not self._cond.wait_for(lambda: self._count + len(events) <= self.max_buffer,
                                       timeout=timeout):
                raise BufferFull(f"The buffer holds {self._count} of {self.max_buffer} events "
                                 "waiting for Tally; these were not taken.")
            if self._thread is None:
                self._start()
            self._pending.setdefault(key, []).extend(events)
            self._count += len(events)
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._cond.notify_all()

    def flush(self, timeout: float | None) -> bool:
        """Send everything taken so far; True once all of it was delivered or dropped."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._count == 0 and self._in_flight == 0,
                                           timeout=timeout)
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """Send what is left for at most `close_timeout` seconds, then stop. Idempotent."""
        with self._cond:
            if self._deadline is None:
                self._deadline = time.monotonic() + self.close_timeout
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.close_timeout + 1)
        with self._cond:
            leftover = self._take_all()
        for key_events in leftover:
            self.drop(key_events, TallyUnavailable(
                f"Tally could not be reached within close_timeout ({self.close_timeout} s)."))
        atexit.unregister(self.close)

    # The sender thread ------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tally-client-ingest", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # flush on exit; the thread is a daemon, so exit never hangs

    def _ready(self) -> bool:
        if not self._count:
            return False
        if self._deadline is not None or self._flushing:
            return True
        assert self._oldest is not None
        return (time.monotonic() - self._oldest >= self.flush_interval
                or any(len(events) >= self.batch_size for events in self._pending.values()))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready():
                    if self._deadline is not None and not self._count:
                        return
                    wait = None if self._oldest is None else max(
                        0.0, self._oldest + self.flush_interval - time.monotonic())
                    self._cond.wait(wait)
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    return  # close() drops what is left
                key, batch = self._take()
            try:
                self._send(key, batch)
            except Exception as exc:  # a bug must not kill the thread and strand the buffer
                log.exception("tally_client: sending a batch failed")
                self.drop(batch, TallyUnavailable(f"Sending failed: {exc!r}"))
            with self._cond:
                self._in_flight -= len(batch)
                self._cond.notify_all()

    def _take(self) -> tuple[str, list[WireEvent]]:
        """The next batch: up to batch_size events of the first key (caller holds the lock)."""
        key = next(iter(self._pending))
        events = self._pending[key]
        batch, rest = events[:self.batch_size], events[self.batch_size:]
        if rest:
            self._pending[key] = rest
        else:
            del self._pending[key]
        self._count -= len(batch)
        self._in_flight += len(batch)
        if not self._count:
            self._oldest = None
        self._cond.notify_all()  # room for waiting callers
        return key, batch

    def _take_all(self) -> list[list[WireEvent]]:
        left = list(self._pending.values())
        self._pending.clear()
        self._count, self._oldest = 0, None
        self._cond.notify_all()
        return left

    def _send(self, key: str, batch: list[WireEvent]) -> None:
        attempt = 0
        while True:
            attempt += 1
            outcome: Outcome
            try:
                outcome = self._post(key, batch)
            except NETWORK_ERRORS as exc:
                outcome = exc
            step = next_step(BACKGROUND_RETRIES, attempt, outcome)
            if isinstance(step, Wait):
                if self._pause(step.seconds):
                    continue
                step = GiveUp(outcome)
            if isinstance(step, GiveUp):  # only when closing: background retries never end
                last = step.last
                self.drop(batch, error_from_answer(last.status_code, last.content, last.headers)
                          if isinstance(last, httpx.Response) else TallyUnavailable(
                              f"Tally could not be reached before the client closed: "
                              f"{type(last).__name__}: {last}"))
                return
            if step.status_code != 200:
                self.drop(batch, error_from_answer(step.status_code, step.content, step.headers))
                return
            result = IngestResult.from_answer(step.json())
            if result.rejected:
                self.drop([batch[r.index] for r in result.rejected if r.index < len(batch)],
                           EventsRejected(result.rejected))
            return

    def _pause(self, seconds: float) -> bool:
        """Wait before a retry; False when closing leaves no time for it. When close()
        begins during the wait, try again at once: Tally may be back, and time is short."""
        end = time.monotonic() + seconds
        with self._cond:
            closing_already = self._deadline is not None
            while True:
                if self._deadline is not None:
                    if not closing_already:
                        return True
                    if end > self._deadline:
                        return False
                now = time.monotonic()
                if now >= end:
                    return True
                self._cond.wait(end - now)

    def drop(self, events: list[WireEvent], error: TallyError) -> None:
        try:
            self._on_dropped(events, error)
        except Exception:
            log.exception("tally_client: on_dropped raised")
