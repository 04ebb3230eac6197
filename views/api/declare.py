"""One declaration per /v1 operation.

`@operation(...)` on a view says which key kinds may call it, the JSON body and query it
reads (pydantic models, views/api/schemas/) and what it answers. The same declaration
checks every request, hands the view typed values (`body=`, `query=`), turns the model the
view returns into the JSON answer, and is what views/api/openapi.py reads to build the
OpenAPI document. A failed check is Tally's 400 (views/api/invalid.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ValidationError

from models.keys import KIND_ACCOUNT, KIND_USAGE
from views import idempotency
from views.api import FORM_TYPES, TAKES_FORMS, authorize_key, json_body, require_key, stripe_form
from views.api.invalid import invalid_input
from views.api.schemas.common import Answer, Query, Request

Model = TypeVar("Model", bound=BaseModel)
View = Callable[..., Any]
_DECLARED = "__tally_operation__"


@dataclass(frozen=True)
class OneOf:
    """A body of one of several shapes; `pick` chooses the shape from the body's keys."""

    shapes: tuple[type[Request], ...]
    pick: Callable[[dict[str, Any]], type[Request]]


@dataclass(frozen=True)
class Binary:
    """An answer that is a file in one of these media types, not JSON."""

    media_types: tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    keys: tuple[str, ...]  # key kinds that may call it; () is public
    tag: str  # the document's section
    summary: str
    answer: type[Answer] | Binary
    status: int = 200
    body: type[Request] | OneOf | None = None
    raw_body: bool = False  # the body is documented, and the view reads the bytes itself
    query: type[Query] | None = None
    headers: tuple[tuple[str, str], ...] = ()  # required request headers: (name, description)
    stripe: bool = False  # calls Stripe: 502 when it refuses, 503 when it cannot be reached
    errors: tuple[int, ...] = ()  # statuses beyond those the generator derives
    description: str = ""
    form: bool = False  # the body may also come in Stripe's form encoding (views/api/stripe_form.py)
    permission: str | None = None  # what an account or usage key's role must hold


def operation(keys: tuple[str, ...], tag: str, summary: str, answer: type[Answer] | Binary, *,
              status: int = 200, body: type[Request] | OneOf | None = None, raw_body: bool = False,
              query: type[Query] | None = None, headers: tuple[tuple[str, str], ...] = (),
              stripe: bool = False, errors: tuple[int, ...] = (),
              description: str = "", form: bool = False,
              permission: str | None = None) -> Callable[[View], View]:
    """Declare a view: see the module's docstring. An operation an account or usage key may
    call names the `permission` its role needs (services/identity/members.py)."""
    if permission is None and set(keys) & {KIND_ACCOUNT, KIND_USAGE}:
        raise TypeError(f"{summary!r}: an operation for account keys declares its permission")
    declared = Operation(keys, tag, summary, answer, status, body, raw_body, query, headers, stripe,
                         errors, description, form, permission)

    def decorate(view: View) -> View:
        @wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            if declared.keys:
                # Only now, with the key and its scope checked, may a stored answer be
                # replayed (views/idempotency.py).
                key = require_key(declared.keys)
                if declared.permission is not None and key.account_id is not None:
                    authorize_key(key, declared.permission)
                replay = idempotency.claim(idempotency.scope(key),
                                           request.headers.get(idempotency.HEADER))
                if replay is not None:
                    return replay
            if declared.body is not None and not declared.raw_body:
                kwargs["body"] = _body(declared)
            if declared.query is not None:
                kwargs["query"] = validated(declared.query, request.args.to_dict())
            return _respond(declared, view(*args, **kwargs))

        setattr(run, _DECLARED, declared)
        setattr(run, TAKES_FORMS, form)
        return run

    return decorate


def declared_operation(view: View) -> Operation | None:
    return getattr(view, _DECLARED, None)


def validated(model: type[Model], data: Any) -> Model:
    """`data` as `model`, or the 400 naming the first fault. Pages that take the same values
    as the API check them with the API's own model through this."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, model) from None


def read_body(shape: type[Request] | OneOf, data: dict[str, Any]) -> Request:
    return validated(shape.pick(data) if isinstance(shape, OneOf) else shape, data)


def _body(declared: Operation) -> Request:
    """The JSON body, or (where declared) Stripe's form encoding, read in lax mode: a form's
    values are all text."""
    assert declared.body is not None
    if declared.form and request.mimetype in FORM_TYPES:
        data = stripe_form.decode(request.form.items(multi=True))
        shape = declared.body.pick(data) if isinstance(declared.body, OneOf) else declared.body
        try:
            return shape.model_validate(data, strict=False)
        except ValidationError as exc:
            raise invalid_input(exc, shape) from None
    return read_body(declared.body, json_body())


def _respond(declared: Operation, result: Any) -> Any:
    if isinstance(result, Response):
        return result
    status = declared.status
    if isinstance(result, tuple):
        result, status = result
    if status != declared.status:
        raise TypeError(f"{status} is not a declared status of this operation")
    if isinstance(declared.answer, Binary) or not isinstance(result, declared.answer):
        raise TypeError(f"{type(result).__name__} is not the declared answer {declared.answer}")
    return jsonify(result.model_dump(mode="json", by_alias=True)), status
