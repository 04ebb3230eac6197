"""Render a whole page, or one named block of it when htmx asks for that block."""

from __future__ import annotations

from typing import Any

from flask import make_response, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    """An htmx request that swaps part of a page (not a history restore, which wants the
    whole page)."""
    return (request.headers.get("HX-Request") == "true"
            and request.headers.get("HX-History-Restore-Request") != "true")


def render_page(template: str, blocks: tuple[str, ...] = (), status: int = 200, **context: Any):
    """One URL, one view: `HX-Target` naming one of `blocks` gets just that block.
    `status`: the answer's status (400 when the page shows a form's errors)."""
    target = request.headers.get("HX-Target")
    is_fragment = is_htmx() and target in blocks
    body = render_block(template, target, **context) if is_fragment else render_template(
        template, **context)
    response = make_response(body, status)
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response
