"""Tally's typed failures. Views turn them into one JSON shape or a message on the page."""

from __future__ import annotations

from typing import Any


class TallyError(Exception):
    status = 400
    title = "Bad request"
    code = "bad_request"
    # Fields of the answer that are links to pages: name -> endpoint, made absolute by the
    # view that answers (services never build URLs).
    links: dict[str, str] = {}

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.param = param
        self.status = status or self.status
        self.title = title or self.title
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.title, "code": self.code, "message": self.message}
        if self.param:
            body["param"] = self.param
        body.update(self.extra)
        return body


class InvalidInput(TallyError):
    status, title, code = 400, "Invalid request", "invalid_request"


class Unauthorized(TallyError):
    status, title, code = 401, "Unauthorized", "unauthorized"


class Forbidden(TallyError):
    status, title, code = 403, "Forbidden", "forbidden"


class NotFound(TallyError):
    status, title, code = 404, "Not found", "not_found"


class Conflict(TallyError):
    status, title, code = 409, "Conflict", "conflict"


class PaymentFailed(TallyError):
    status, title, code = 402, "Payment failed", "payment_failed"


class LimitExceeded(TallyError):
    """402: a call over a plan limit, beyond the prepaid credit or the monthly spend cap.

    Nothing was recorded. Every 402 of metering is this one shape: `usage` holds the
    meter's use and limit, and `upgrade_url` the page where the user can raise it.
    """

    status, title, code = 402, "Usage limit exceeded", "usage_limit_exceeded"
    links = {"upgrade_url": "pages.plans"}

    def __init__(self, message: str, *, current: int, limit: int | None) -> None:
        super().__init__(message, extra={"usage": {"current": current, "limit": limit}})


class UpstreamError(TallyError):
    status, title, code = 502, "Payment provider error", "stripe_error"


class Unavailable(TallyError):
    status, title, code = 503, "Service unavailable", "service_unavailable"
