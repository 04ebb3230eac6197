"""Every `/v1` list answers `{object: "list", data, has_more}` and takes `limit` (1-100,
default 10), `starting_after` and `ending_before` (services/pagination.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from services.pagination import Page, parse_limit


def page_args() -> dict[str, Any]:
    """The request's cursor arguments, checked, as keyword arguments for a list service."""
    return {"limit": parse_limit(request.args.get("limit")),
            "starting_after": request.args.get("starting_after") or None,
            "ending_before": request.args.get("ending_before") or None}


def list_response(page: Page, render: Callable[[Any], dict[str, Any]], *,
                  also_as: str | None = None) -> Response:
    """The list answer; `also_as` repeats the items under an older name clients still read."""
    data = [render(item) for item in page.items]
    body: dict[str, Any] = {"object": "list", "data": data, "has_more": page.has_more}
    if also_as:
        body[also_as] = data
    return jsonify(body)
