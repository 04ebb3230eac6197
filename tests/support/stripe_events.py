"""Stripe webhook deliveries for tests: real events from localstripe, signed as Stripe signs.

Stripe signs `"{timestamp}.{payload}"` with HMAC-SHA256 under the endpoint secret and
sends `Stripe-Signature: t=<timestamp>,v1=<hex>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from typing import Any


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(client: Any, payload: bytes, secret: str) -> dict:
    """POST a signed delivery to Tally's webhook with a Flask test client; its 200 answer."""
    response = client.post("/v1/billing/webhook", data=payload, headers={
        "Stripe-Signature": signature_header(payload, secret), "Content-Type": "application/json"})
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def event_payloads(localstripe_url: str, event_type: str) -> dict[str, bytes]:
    """The raw JSON of the first `event_type` event about each object, by the object's id."""
    request = urllib.request.Request(
        f"{localstripe_url}/v1/events?type={event_type}&limit=100000",
        headers={"Authorization": "Bearer sk_test_tally"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        events = json.load(response)["data"]
    payloads: dict[str, bytes] = {}
    for event in events:  # oldest first: the first event about an object wins
        payloads.setdefault(event["data"]["object"].get("id"), json.dumps(event).encode())
    return payloads


def event_payload(localstripe_url: str, event_type: str, object_id: str) -> bytes:
    """The raw JSON of localstripe's `event_type` event about `object_id`."""
    try:
        return event_payloads(localstripe_url, event_type)[object_id]
    except KeyError:
        raise LookupError(f"localstripe has no {event_type} event for {object_id}") from None
