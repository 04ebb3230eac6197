"""A request that does not fit its declaration, as Tally's 400: the first fault, with
`param` naming the field as the request spells it (`events[3].id`, `charges[0].tiers`)
and a message in Tally's words: the field's own (`Says`), a validator's, or a generic one.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from services.errors import InvalidInput
from views.api.schemas.common import Says

_GENERIC = {
    "missing": "{param} is required.",
    "not_null": "{param} must not be null; leave it out instead.",
    "int_type": "{param} must be a whole number.",
    "int_parsing": "{param} must be a whole number.",
    "int_from_float": "{param} must be a whole number.",
    "string_type": "{param} must be a string.",
    "bool_type": "{param} must be true or false.",
    "bool_parsing": "{param} must be true or false.",
    "dict_type": "{param} must be a JSON object.",
    "model_type": "{param} must be a JSON object.",
    "model_attributes_type": "{param} must be a JSON object.",
    "list_type": "{param} must be a list.",
    "string_too_short": "{param} must be at least {min_length} characters.",
    "string_too_long": "{param} must be at most {max_length} characters.",
    "too_short": "{param} must have at least {min_length} items.",
    "too_long": "{param} must have at most {max_length} items.",
    "greater_than_equal": "{param} must be at least {ge}.",
    "greater_than": "{param} must be greater than {gt}.",
    "less_than_equal": "{param} must be at most {le}.",
    "less_than": "{param} must be less than {lt}.",
    "literal_error": "{param} must be one of {expected}.",
    "string_pattern_mismatch": "{param} is not in the expected form.",
    "extra_forbidden": "{param} is not a field Tally knows here.",
}


def invalid_input(error: ValidationError, model: Any) -> InvalidInput:
    """The first fault of `error`, raised validating `model`, as an InvalidInput."""
    first = error.errors(include_url=False)[0]
    context = first.get("ctx") or {}
    loc, says = says_at(model, first["loc"])
    where = param_of(loc)
    inner = context.get("param")  # named by a check of the whole object at `where`
    if inner:
        where = f"{where}.{inner}" if where else inner
    return InvalidInput(_message(first, where or None, says), param=where or None)


def param_of(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _message(fault: ErrorDetails, param: str | None, says: Says | None) -> str:
    name = param or "The body"
    context = fault.get("ctx") or {}
    if fault["type"] == "tally":
        return str(context["message"]).replace("{param}", name)
    if says is not None:
        text = says.missing if fault["type"] == "missing" and says.missing else says.invalid
        return text.replace("{param}", name)
    template = _GENERIC.get(fault["type"])
    if template is None:
        return f"{name} is not valid: {fault['msg']}."
    values = {k: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in context.items()}
    return template.format(param=name, **values)


# Finding a field's Says from the error's location -----------------------------------------


def says_at(model: Any, loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], Says | None]:
    """The field at `loc` (a list's, when the list answers for its items) and its Says."""
    annotation: Any = model
    says: Says | None = None
    for depth, part in enumerate(loc):
        annotation, says = _step(annotation, part)
        if annotation is None:
            return loc, None
        if says is not None and says.items and all(isinstance(p, int) for p in loc[depth + 1:]):
            return loc[:depth + 1], says
    return loc, says


def _step(annotation: Any, part: int | str) -> tuple[Any, Says | None]:
    for member in _members(annotation):
        if isinstance(part, int) and get_origin(member) is list:
            item = get_args(member)[0]
            return item, _says_of(item)
        if isinstance(part, str) and isinstance(member, type) and issubclass(member, BaseModel):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    found = next((m for m in info.metadata if isinstance(m, Says)), None)
                    return info.annotation, found or _says_of(info.annotation)
    return None, None


def _members(annotation: Any) -> list[Any]:
    """The types an annotation may hold: Annotated unwrapped, unions spread."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _says_of(annotation: Any) -> Says | None:
    if get_origin(annotation) is Annotated:
        return next((m for m in get_args(annotation)[1:] if isinstance(m, Says)), None)
    if get_origin(annotation) in (Union, types.UnionType):
        return next((s for arg in get_args(annotation) if (s := _says_of(arg))), None)
    return None
