"""What the client sends and what Tally answers, as typed values."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Policy = Literal["open", "closed"]
"""What `authorize` decides when Tally cannot be reached: serve the call, or refuse it."""

DecidedBy = Literal["tally", "fail_open", "fail_closed"]


def new_id(prefix: str) -> str:
    """A client-side id, made once per call or event and sent again on every retry."""
    return f"{prefix}_{uuid.uuid4().hex}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """A usage event for `POST /v1/events`. `id` counts once per account for as long as
    Tally keeps the event (TALLY_EVENT_RETENTION_DAYS, longer than the 35 days an event may
    be late): the client makes one when you give none. `timestamp` defaults to when `ingest` took it,
    not when the batch leaves, so a late batch still lands in the right hour and month."""

    event_name: str
    properties: Mapping[str, Any] | None = None
    id: str | None = None
    timestamp: datetime | None = None

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id or new_id("evt"), "event_name": self.event_name,
                "timestamp": rfc3339(self.timestamp or now),
                "properties": dict(self.properties or {})}


@dataclass(frozen=True, slots=True)
class Usage:
    """A meter's use this period and its limit (None: unlimited)."""

    current: int
    limit: int | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to `authorize` when the call may be served.

    `decided_by` says who decided: `"tally"` (Tally answered), `"fail_open"` (Tally could not
    be reached and the policy served the call; its event was queued for ingestion with the
    same `id`) or `"fail_closed"` (the policy refused it; this decision then travels on the
    `TallyUnavailable` exception). `error` is why Tally could not be reached.
    """

    allowed: bool
    id: str
    decided_by: DecidedBy = "tally"
    account_id: str | None = None
    tier: str | None = None
    usage: Usage | None = None
    remaining: int | None = None
    duplicate: bool = False
    error: Exception | None = field(default=None, compare=False)

    @classmethod
    def from_answer(cls, request_id: str, body: Mapping[str, Any]) -> Decision:
        usage = body.get("usage")
        return cls(allowed=bool(body.get("allowed", True)), id=request_id,
                   account_id=body.get("account_id"), tier=body.get("tier"),
                   usage=Usage(usage["current"], usage.get("limit")) if usage else None,
                   remaining=body.get("remaining"), duplicate=bool(body.get("duplicate", False)))


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """One event of a batch that Tally refused (the others counted)."""

    index: int
    id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Tally's answer to one batch: new events, repeats of known ids, and refusals."""

    accepted: int
    duplicates: int
    rejected: tuple[RejectedEvent, ...] = ()

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> IngestResult:
        return cls(accepted=int(body.get("accepted", 0)), duplicates=int(body.get("duplicates", 0)),
                   rejected=tuple(RejectedEvent(int(r["index"]), str(r["id"]), str(r["code"]),
                                                str(r["message"]))
                                  for r in body.get("rejected", [])))
