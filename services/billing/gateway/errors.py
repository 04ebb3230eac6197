"""Stripe's errors as Tally's, and Stripe idempotency keys within Stripe's limit."""

from __future__ import annotations

import hashlib
from typing import Any

import stripe

from services import uow
from services.errors import InvalidInput, NotFound, PaymentFailed, Unavailable, UpstreamError

MAX_IDEMPOTENCY_KEY = 255  # Stripe refuses longer Idempotency-Key headers


def idempotency(key: str) -> stripe.RequestOptions:
    """A call's request options with `key` as Stripe's idempotency key. A key longer than
    Stripe takes (one a client's own 255-character Idempotency-Key went into) keeps its
    start and ends in the SHA-256 of the whole key: the same key stays the same, and two
    keys stay two."""
    if len(key) > MAX_IDEMPOTENCY_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()
        key = f"{key[:MAX_IDEMPOTENCY_KEY - len(digest) - 1]}-{digest}"
    return {"idempotency_key": key}



class translated_errors:
    """Turn `stripe` exceptions into Tally errors with a clear message.

    `caller_fault`: Stripe refusing the request (400) is the caller's doing, such as a
    payment method Stripe cannot use; it becomes `InvalidInput`, not a 502."""

    def __init__(self, *, caller_fault: bool = False) -> None:
        self.caller_fault = caller_fault

    def __enter__(self) -> None:
        # A network call never waits while the operation holds a row lock (services/uow.py).
        uow.assert_no_writes("A Stripe call")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if exc is None or not isinstance(exc, stripe.StripeError):
            return  # not Stripe's: it goes on as it is
        message = exc.user_message or str(exc)
        if isinstance(exc, stripe.CardError):
            raise PaymentFailed(message, code=exc.code or "card_declined") from exc
        if isinstance(exc, stripe.InvalidRequestError) and (
            exc.code == "resource_missing" or exc.http_status == 404
        ):
            raise NotFound(message, code="resource_missing") from exc
        if isinstance(exc, stripe.APIConnectionError):
            raise Unavailable(
                "Could not reach Stripe; nothing was charged. Try again in a moment.",
                code="stripe_unavailable",
            ) from exc
        if self.caller_fault and isinstance(exc, stripe.InvalidRequestError):
            raise InvalidInput(f"Stripe refused it: {message}", code="stripe_refused") from exc
        raise UpstreamError(f"Stripe refused the request: {message}") from exc
