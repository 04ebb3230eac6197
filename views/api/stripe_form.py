"""Stripe's form encoding (`application/x-www-form-urlencoded`), as the official Stripe
libraries send it, read into the JSON object the same declaration checks.

`features[customer_update][allowed_updates][0]=email` becomes
`{"features": {"customer_update": {"allowed_updates": ["email"]}}}`; `name[]=a&name[]=b`
a list too. Every value arrives as text, so the declaration reads it in lax mode ("true"
is true, "5" is 5). An empty value is Stripe's "unset" and reads as null (under
`metadata`, an empty value stays empty: it removes that key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from services.errors import InvalidInput

_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_DEPTH = 8


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        rest = "[" + rest
        found = _PART.findall(rest)
        if "".join(f"[{p}]" for p in found) != rest:
            raise InvalidInput(f"{key} is not a parameter name Stripe's encoding makes.", param=head)
        parts.extend(found)
    if len(parts) > MAX_DEPTH or not head:
        raise InvalidInput(f"{key} is not a parameter name Stripe's encoding makes.", param=head)
    return parts


def _put(node: dict[str, Any], parts: list[str], value: str) -> None:
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InvalidInput(f"{parts[0]} is given twice, as a value and as an object.",
                               param=".".join(parts[:i + 1]))
        node = child
    last = parts[-1]
    if last == "":  # name[]=a: the next item
        last = str(sum(1 for k in node if k.isdigit()))
    if isinstance(node.get(last), dict):
        raise InvalidInput(f"{parts[0]} is given twice, as a value and as an object.",
                           param=".".join(parts))
    node[last] = None if value == "" and parts[0] != "metadata" else value


def _lists(node: Any) -> Any:
    """Objects whose keys are all indexes become lists, in index order."""
    if not isinstance(node, dict):
        return node
    shaped = {key: _lists(value) for key, value in node.items()}
    if shaped and all(key.isdigit() for key in shaped):
        return [shaped[key] for key in sorted(shaped, key=int)]
    return shaped


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The nested object a Stripe form body encodes (`expand` is left out)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _path(key)
        if parts[0] != "expand":
            _put(root, parts, value)
    return {key: _lists(value) for key, value in root.items()}
