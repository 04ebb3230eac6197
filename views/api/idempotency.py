"""`Idempotency-Key` on every POST under /v1 (services/idempotency.py holds the rules).

The key is claimed only once the request has passed the same checks as any other: the API
key is valid and of a kind the endpoint takes (`declare.operation` calls `claim`). Claims are
kept per credential scope (an account's account keys, its usage keys, a staff user's
staff keys), so two scopes never share an answer: a usage key sending an account key's
Idempotency-Key gets its own 403, never the account key's stored answer. A retry in the
same scope gets the stored first answer with `Idempotent-Replayed: true`. After the view,
the answer is stored in the request's transaction, so it commits with the work (a 5xx, or
an answer too large to keep, releases the key instead).

Secrets are never stored: an API key is shown once (a replay answers `api_key: null`),
and a PaymentIntent's client secret is read again from Stripe for the replay.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, g, request

from models import ApiKey
from services import idempotency, uow
from services.ledger import topups
from views.api import bp, key_owner

# Top-level fields of a JSON answer that the store never keeps.
NEVER_STORED = ("api_key", "client_secret", "payment_intent_client_secret")
# Those read again for a replay: the field, and the field naming its PaymentIntent.
REFETCHED = {"client_secret": "payment_intent_id",
             "payment_intent_client_secret": "payment_intent_id"}


def scope(key: ApiKey) -> str:
    """Whose stored answers a request may see: `account:<id>:account_key`,
    `account:<id>:usage_key` or `user:<id>:staff_key`."""
    return f"{key_owner(key)}:{key.kind}_key"


def _path() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + ("?" + query if query else "")


def claim(key: ApiKey) -> Response | None:
    """For a POST with `Idempotency-Key`, after authentication and the key-scope check:
    the stored first answer to replay, or None once the key is claimed for this request."""
    raw = request.headers.get(idempotency.HEADER)
    if request.method != "POST" or raw is None:
        return None
    outcome = idempotency.begin(scope(key), idempotency.check_key(raw), idempotency.fingerprint(
        request.method, _path(), request.get_data(cache=True)))
    if isinstance(outcome, idempotency.Stored):
        uow.rollback()  # nothing claimed; a replay may read from Stripe, never after a write
        return _replay(outcome)
    g.idempotency_record = outcome
    uow.commit()  # the claim: its own unit of work, seen by every other worker from now on
    return None


def _replay(stored: idempotency.Stored) -> Response:
    body = stored.body
    answer = _json_object(body, stored.content_type)
    account = g.get("account")
    if answer is not None and account is not None and any(
            answer.get(field) is None and answer.get(id_field)
            for field, id_field in REFETCHED.items() if field in answer):
        for field, id_field in REFETCHED.items():
            if field in answer and answer[field] is None and isinstance(answer.get(id_field), str):
                answer[field] = topups.client_secret(account, answer[id_field])
        body = _dumps(answer)
    replay = current_app.response_class(body, status=stored.status,
                                        content_type=stored.content_type)
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def _json_object(body: str, content_type: str) -> dict[str, Any] | None:
    if not content_type.startswith("application/json"):
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _dumps(answer: dict[str, Any]) -> str:
    """As `jsonify` writes it, so a replay is the same bytes as the first answer."""
    return current_app.json.response(answer).get_data(as_text=True)


@bp.after_request
def store_idempotent_response(response: Response) -> Response:
    record_id = g.pop("idempotency_record", None)
    if record_id is not None:
        body = response.get_data(as_text=True)
        answer = _json_object(body, response.content_type or "")
        if answer is not None and any(field in answer for field in NEVER_STORED):
            body = _dumps(answer | {f: None for f in NEVER_STORED if f in answer})
        idempotency.finish(record_id, response.status_code, body,
                           response.content_type or "application/json")
    return response
