"""API keys: list, create (account or usage keys), rotate, revoke."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify

from models import ApiKey
from models.keys import KIND_ACCOUNT, KIND_USAGE
from services.errors import InvalidInput
from services.identity import keys
from views.api import ACCOUNT_KEY, account, bp, json_body, key_required
from views.api.lists import list_response, page_args


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "kind": key.kind,
        "prefix": key.prefix,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


@bp.get("/keys")
@key_required(*ACCOUNT_KEY)
def list_keys():
    return list_response(keys.list_page(account().id, **page_args()), key_json)


@bp.post("/keys")
@key_required(*ACCOUNT_KEY)
def create_key():
    """`{"kind": "usage" | "account", "name"}`; the key is in this answer only (the
    idempotency store never keeps `api_key`)."""
    body = json_body()
    kind = body.get("kind", KIND_USAGE)
    if kind not in (KIND_ACCOUNT, KIND_USAGE):
        raise InvalidInput("kind must be usage or account.", param="kind")
    issued = keys.issue_key(account=account(), kind=kind, name=keys.clean_name(body.get("name"), kind))
    return jsonify(api_key=issued.plaintext, key=key_json(issued.key)), 201


@bp.post("/keys/rotate")
@key_required(*ACCOUNT_KEY)
def rotate_key():
    """Rotate the calling key, or `{"key_id"}` of this account; the old key stops at once."""
    body = json_body()
    key_id = body.get("key_id", g.api_key.id)
    if not isinstance(key_id, str):
        raise InvalidInput("key_id must be a string such as key_...", param="key_id")
    issued = keys.rotate(keys.get_account_key(account().id, key_id))
    return jsonify(api_key=issued.plaintext, key=key_json(issued.key))


@bp.post("/keys/<key_id>/revoke")
@bp.delete("/keys/<key_id>", endpoint="delete_key")
@key_required(*ACCOUNT_KEY)
def revoke_key(key_id: str):
    revoked = keys.revoke(keys.get_account_key(account().id, key_id))
    return jsonify(key_json(revoked) | {"revoked": True})
