"""`Idempotency-Key` on every POST under /v1 (services/idempotency.py holds the rules).

Before the view runs, the key is claimed for the caller's account (or staff user); a retry
gets the stored first answer with `Idempotent-Replayed: true`. After the view, the answer
is stored (a 5xx releases the key instead).
"""

from __future__ import annotations

import json

from flask import Response, current_app, g, request

from services import idempotency, uow
from views.api import bp, current_key, key_owner


def _path() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + ("?" + query if query else "")


@bp.before_request
def claim_idempotency_key() -> Response | None:
    raw = request.headers.get(idempotency.HEADER)
    if request.method != "POST" or raw is None:
        return None
    key = idempotency.check_key(raw)
    owner = key_owner(current_key())  # an invalid API key is a 401 before anything is stored
    outcome = idempotency.begin(owner, key, idempotency.fingerprint(
        request.method, _path(), request.get_data(cache=True)))
    if isinstance(outcome, idempotency.Stored):
        replay = current_app.response_class(outcome.body, status=outcome.status,
                                            content_type=outcome.content_type)
        replay.headers["Idempotent-Replayed"] = "true"
        return replay
    g.idempotency_record = outcome
    uow.commit()  # the claim: its own unit of work, seen by every other worker from now on
    return None


def never_store(*fields: str) -> None:
    """Fields of this request's answer that must not be kept for replays (secrets: an
    API key is shown once and stored only as a hash). A replay answers them as null."""
    g.idempotency_secret_fields = fields


@bp.after_request
def store_idempotent_response(response: Response) -> Response:
    record_id = g.pop("idempotency_record", None)
    if record_id is not None:
        body = response.get_data(as_text=True)
        secrets = g.pop("idempotency_secret_fields", ())
        if secrets and response.is_json:
            answer = json.loads(body)
            body = json.dumps(answer | {f: None for f in secrets if f in answer})
        idempotency.finish(record_id, response.status_code, body,
                           response.content_type or "application/json")
    return response
