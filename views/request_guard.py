"""Refuse text no database column can hold, before any view reads it.

PostgreSQL text cannot contain NUL, and no encoding can store a lone UTF-16 surrogate
(`\\ud800` in JSON): both failed deep inside a query as a 500. A NUL in the path, the query
string or a form field, and a JSON body with either, is a 400 here instead (found by the
contract tests, tests/test_contract.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Flask, request

from services.errors import InvalidInput

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# A surrogate written as UTF-8 bytes (ED A0-BF ..): json.loads decodes it ("surrogatepass").
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")


def check_request() -> None:
    if "\x00" in request.path or any(
            "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        raise InvalidInput("The address must not contain NUL characters.", code="invalid_characters")
    if request.mimetype == "application/x-www-form-urlencoded" and any(
            "\x00" in key or "\x00" in value for key, value in request.form.items(multi=True)):
        raise InvalidInput("The form must not contain NUL characters.", code="invalid_characters")


def check_json_text(raw: bytes, data: object) -> None:
    """`data` parsed from `raw`: refuse strings with NUL or an unpaired surrogate. The
    text is searched first, so the usual body costs no second pass."""
    if b"\\u0000" in raw and any("\x00" in text for text in _strings(data)):
        raise InvalidInput("Strings in the body must not contain NUL (\\u0000).", code="invalid_json")
    if (_SURROGATE_ESCAPE.search(raw) or _SURROGATE_BYTES.search(raw)) \
            and not all(_encodable(text) for text in _strings(data)):
        raise InvalidInput("Strings in the body must not contain unpaired UTF-16 surrogates.",
                           code="invalid_json")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strings(data: object) -> Iterator[str]:
    """Every string in a parsed JSON document, keys included (without recursion: bodies nest)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def init_app(app: Flask) -> None:
    app.before_request(check_request)
