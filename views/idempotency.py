"""`Idempotency-Key`: one mechanism, one store, for the API and the pages alike.

services/idempotency.py holds the rules; this is where requests meet them.
- **API** (every declared POST under /v1): the key is claimed only once the request has
  passed the same checks as any other: the API key is valid and of a kind the endpoint
  takes (`declare.operation` calls `claim`).
- **Pages**: a form that creates something or moves money carries a hidden
  `idempotency_key` (`{{ idempotency_field() }}`, one per rendering), and the page scripts
  send it as the header; a POST by a logged-in person that carries one is claimed the same
  way, after the impersonation guard and CSRF. A double click, or a retry after a lost
  answer, gets the first answer (its redirect too) instead of a second grant or payment.
- **Stripe**: services derive the idempotency key of the Stripe call an operation makes
  from `operation_key()` (services/idempotency.stripe_key), so a retried operation makes
  the same Stripe call.

Claims are kept per credential scope (an account's account keys, its usage keys, a staff
user's staff keys, a person's browser session), so two scopes never share an answer: a
usage key sending an account key's Idempotency-Key gets its own 403, never the account
key's stored answer. A retry in the same scope gets the stored first answer with
`Idempotent-Replayed: true`. After the view, the answer is stored in the request's
transaction, so it commits with the work (a 5xx, or an answer too large to keep, releases
the key instead).

Secrets are never stored: an API key is shown once (a replay answers `api_key: null`),
and a PaymentIntent's client secret is read again from Stripe for the replay.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, request
from flask_login import current_user
from markupsafe import Markup

from models import Account, ApiKey
from services import idempotency, uow
from services.billing import cards
from services.ledger import topups
from views.session import true_user

# Top-level fields of a JSON answer that the store never keeps.
NEVER_STORED = ("api_key", "client_secret", "payment_intent_client_secret")
# Those read again for a replay: the field, and the field naming its PaymentIntent (or
# SetupIntent).
REFETCHED = {"client_secret": ("payment_intent_id", "setup_intent_id"),
             "payment_intent_client_secret": ("payment_intent_id",)}


HEADER = idempotency.HEADER
FIELD = "idempotency_key"  # the hidden field of page forms


def scope(key: ApiKey) -> str:
    """Whose stored answers a request may see: `account:<id>:account_key`,
    `account:<id>:usage_key` or `user:<id>:staff_key`."""
    owner = f"account:{key.account_id}" if key.account_id else f"user:{key.user_id}"
    return f"{owner}:{key.kind}_key"


def operation_key() -> str | None:
    """The current operation's Idempotency-Key with its scope (None without one): what a
    service derives the idempotency key of its Stripe call from."""
    return g.get("operation_key")


def _body() -> bytes:
    """What the request sends: its form's fields (a page's form is parsed, so its bytes are
    read already; the CSRF token and the key itself aside), or its raw body."""
    if request.form:
        fields = sorted((k, v) for k, v in request.form.items(multi=True)
                        if k not in (FIELD, "csrf_token") and not k.endswith("-csrf_token"))
        return urlencode(fields).encode()
    return request.get_data(cache=True)


def _path() -> str:
    query = request.query_string.decode("latin-1")
    return request.path + ("?" + query if query else "")


def claim(owner: str, raw: str | None) -> Response | None:
    """For a POST with an Idempotency-Key (`raw`), once the request passed its checks: the
    stored first answer to replay, or None once the key is claimed for this request."""
    if request.method != "POST" or raw is None:
        return None
    key = idempotency.check_key(raw)
    outcome = idempotency.begin(owner, key, idempotency.fingerprint(
        request.method, _path(), _body()))
    if isinstance(outcome, idempotency.Stored):
        uow.rollback()  # nothing claimed; a replay may read from Stripe, never after a write
        return _replay(outcome)
    g.idempotency_record, g.operation_key = outcome, f"{owner}:{key}"
    uow.commit()  # the claim: its own unit of work, seen by every other worker from now on
    return None


def _replay(stored: idempotency.Stored) -> Response:
    body = stored.body
    answer = _json_object(body, stored.content_type)
    account = g.get("account") or _page_account()
    if answer is not None and account is not None and any(
            answer.get(field) is None and any(answer.get(f) for f in id_fields)
            for field, id_fields in REFETCHED.items() if field in answer):
        for field, id_fields in REFETCHED.items():
            if field in answer and answer[field] is None:
                answer[field] = _secret(account, *(answer.get(f) for f in id_fields))
        body = _dumps(answer)
    replay = current_app.response_class(body, status=stored.status,
                                        content_type=stored.content_type)
    if stored.location:
        replay.headers["Location"] = stored.location
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def _secret(account: Account, *ids: Any) -> str | None:
    """The client secret of the first intent named, read from Stripe."""
    intent = next((i for i in ids if isinstance(i, str) and i), None)
    if intent is None:
        return None
    if intent.startswith("seti_"):
        return cards.setup_client_secret(account, intent)
    return topups.client_secret(account, intent)


def _page_account() -> Account | None:
    """A page's account (its views set `g.account` only once they run)."""
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if user is None or user.customer is None or not user.customer.accounts:
        return None
    return user.customer.accounts[0]


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


def _claim_for_page() -> Response | None:
    """Before a page's POST (after the impersonation guard and CSRF): claim its key."""
    if request.method != "POST" or request.blueprint in ("api", "webhooks") \
            or not current_user.is_authenticated:
        return None
    person = true_user() or current_user  # staff viewing as a customer keep their own scope
    raw = request.headers.get(idempotency.HEADER) or request.form.get(FIELD) or None
    return claim(f"user:{person.id}:session", raw)


def field() -> Markup:
    """The hidden field a page form carries (Jinja: `{{ idempotency_field() }}`)."""
    return Markup(f'<input type="hidden" name="{FIELD}" value="{uuid.uuid4()}">')


def store_idempotent_response(response: Response) -> Response:
    record_id = g.pop("idempotency_record", None)
    if record_id is not None:
        body = response.get_data(as_text=True)
        answer = _json_object(body, response.content_type or "")
        if answer is not None and any(field in answer for field in NEVER_STORED):
            body = _dumps(answer | {f: None for f in NEVER_STORED if f in answer})
        idempotency.finish(record_id, response.status_code, body,
                           response.content_type or "application/json",
                           location=response.headers.get("Location"))
    return response


def init_app(app: Flask) -> None:
    """After the impersonation guard (views/session.py) and CSRF, before the views."""
    app.before_request(_claim_for_page)
    app.after_request(store_idempotent_response)
    app.add_template_global(field, "idempotency_field")
