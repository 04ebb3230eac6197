"""API keys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from models.keys import KIND_ACCOUNT, KIND_USAGE
from services.identity import keys
from views.api.schemas.common import Answer, ListOf, NotNull, Request, Says, Time


class ApiKey(Answer):
    id: str = Field(examples=["key_Vb2kq9Lr0xTz7Hm1Pa4s"])
    object: Literal["api_key"] = "api_key"
    name: str = Field(examples=["Usage key"])
    kind: Literal["account", "usage"]
    prefix: str = Field(description="The first characters, to recognise the key.",
                        examples=["tly_a1B2c3D4"])
    created_at: Time
    last_used_at: Time | None


class ApiKeyList(ListOf[ApiKey]):
    pass


class RevokedApiKey(ApiKey):
    revoked: Literal[True] = True


class IssuedApiKey(Answer):
    api_key: str | None = Field(
        description="The key itself, shown only in this answer. A replay of the request (same "
                    "Idempotency-Key) answers null: Tally keeps only the key's hash.",
        pattern="^tly_", examples=["tly_..."])
    key: ApiKey


class CreateKeyRequest(Request):
    kind: Annotated[Literal["usage", "account"], Field(
        description="Default usage: only /v1/authorize, /v1/events and reading balance and usage."),
        Says("kind must be usage or account.")] = "usage"
    name: Annotated[str | None, Field(examples=["Product server"],
                                      json_schema_extra={"maxLength": keys.MAX_NAME_LENGTH}),
                    Says("name must be a string of at most 100 characters.")] = None


class RotateKeyRequest(Request):
    key_id: Annotated[str | None, NotNull(), Field(description="Default: the calling key."),
                      Says("key_id must be a string such as key_...")] = None


assert KIND_ACCOUNT == "account" and KIND_USAGE == "usage"  # the Literal above spells them
