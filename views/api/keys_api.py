"""API keys: list, create (account or usage keys), rotate, revoke."""

from __future__ import annotations

from flask import g

from services.errors import InvalidInput
from services.identity import keys, members
from views.api import ACCOUNT_KEY, account, bp, key_user
from views.api.declare import operation
from views.api.schemas.common import PageQuery
from views.api.schemas.keys import (
    ApiKey,
    ApiKeyList,
    CreateKeyRequest,
    IssuedApiKey,
    RevokedApiKey,
    RotateKeyRequest,
)


@bp.get("/keys")
@operation(ACCOUNT_KEY, "Keys", "The account's active keys", ApiKeyList, query=PageQuery,
           permission=members.READ)
def list_keys(query: PageQuery) -> ApiKeyList:
    return ApiKeyList.of(keys.list_page(account().id, **query.page()), ApiKey.model_validate)


@bp.post("/keys")
@operation(ACCOUNT_KEY, "Keys", "Create a key (shown once)", IssuedApiKey, status=201,
           body=CreateKeyRequest,
           permission=members.KEYS)
def create_key(body: CreateKeyRequest) -> tuple[IssuedApiKey, int]:
    """The key is in this answer only."""
    issued = keys.issue_key(account=account(), kind=body.kind, name=keys.clean_name(body.name, body.kind),
                            created_by=key_user(),  # it acts with the same member's role
                            notify=True)
    return IssuedApiKey(api_key=issued.plaintext, key=ApiKey.model_validate(issued.key)), 201


@bp.post("/keys/rotate")
@operation(ACCOUNT_KEY, "Keys", "Rotate a key", IssuedApiKey, body=RotateKeyRequest, errors=(404,),
           description="The old key gets 401 from the moment this answers, on every worker.",
           permission=members.KEYS)
def rotate_key(body: RotateKeyRequest) -> IssuedApiKey:
    """Rotate the calling key, or `key_id` of this account; the old key stops at once."""
    key_id = body.key_id if body.key_id is not None else g.api_key.id
    if key_id is None:  # the caller signed with a wallet: it has no key of its own
        raise InvalidInput("key_id is required when you call with a wallet signature.",
                           param="key_id")
    issued = keys.rotate(keys.get_account_key(account().id, key_id))
    return IssuedApiKey(api_key=issued.plaintext, key=ApiKey.model_validate(issued.key))


@bp.post("/keys/<key_id>/revoke")
@bp.delete("/keys/<key_id>", endpoint="delete_key")
@operation(ACCOUNT_KEY, "Keys", "Revoke a key", RevokedApiKey,
           permission=members.KEYS)
def revoke_key(key_id: str) -> RevokedApiKey:
    return RevokedApiKey.model_validate(keys.revoke(keys.get_account_key(account().id, key_id)))
