"""One place decides whether an error is JSON or a page.

Every `/v1/` path (and any request that asks for JSON) gets
`{"error", "code", "message", "param"?}`; pages get a friendly error page in Tally's
layout (`error.html`), in Tally's words rather than Werkzeug's.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, jsonify, render_template, request, send_from_directory, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from services import uow
from services.errors import TallyError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

# What a page says for an HTTP error raised without a message of its own (a mistyped
# address, `abort(404)`), instead of Werkzeug's generic description.
_PAGE_TEXT = {
    400: ("Bad request", "The request could not be read. Go back and try again."),
    403: ("Not allowed", "Your login does not give access to this page."),
    404: ("Page not found", "There is no page at this address. The link may be old or mistyped."),
    405: ("Not available this way",
          "This address cannot be opened like that. Use the buttons and links on Tally's pages."),
    500: ("Something went wrong", "Something went wrong on our side; nothing was charged twice. "
          "Try again."),
}

FAVICON_ENDPOINT = "favicon"
# Stripe's own paths, served for Stripe's libraries (views/api/portal.py): errors in Stripe's shape.
STRIPE_PATHS = "/v1/billing_portal/"


def stripe_error(error: TallyError) -> dict[str, Any]:
    """`{"error": {type, code, message, param}}`, `param` spelled as Stripe spells it."""
    kind = ("api_error" if error.status >= 500 else
            "card_error" if error.status == 402 else "invalid_request_error")
    detail: dict[str, Any] = {"type": kind, "code": error.code, "message": error.message}
    if error.param:
        head, *rest = re.split(r"\.|(?=\[)", error.param)
        detail["param"] = head + "".join(p if p.startswith("[") else f"[{p}]" for p in rest if p)
    return {"error": detail}


def wants_json() -> bool:
    return request.path.startswith("/v1/") or request.path.endswith("/webhook") or (
        request.accept_mimetypes.best == "application/json"
    )


def error_response(error: TallyError) -> tuple[Response, int] | tuple[str, int]:
    if request.path.startswith(STRIPE_PATHS):
        return jsonify(stripe_error(error)), error.status
    if wants_json():
        body = error.to_dict()
        for field, endpoint in error.links.items():
            body[field] = url_for(endpoint, _external=True)
        return jsonify(body), error.status
    return render_template("error.html", error=error), error.status


def refusal_response(error: TallyError) -> Response:
    """An error answer a view returns rather than raises: the operation's work stands and
    commits (a subscription whose first payment waits for 3-D Secure answers 402
    `requires_action`, and the subscription is recorded)."""
    body, status = error_response(error)
    response = body if isinstance(body, Response) else Response(body, mimetype="text/html")
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    # An exception ends the operation: whatever it wrote is rolled back (services/uow.py).
    @app.errorhandler(TallyError)
    def tally_error(error: TallyError):
        uow.rollback()
        return error_response(error)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        uow.rollback()
        return error_response(TallyError(
            "The form expired or was sent from another site. Reload the page and try again.",
            code="csrf_failed", status=400, title="Form expired"))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        uow.rollback()
        if error.response is not None:  # a view built its own answer (the login throttle)
            return error.response
        status = error.code or 500
        if not wants_json() and status in _PAGE_TEXT and error.description == type(error).description:
            title, message = _PAGE_TEXT[status]
            return error_response(TallyError(message, code=_HTTP_CODES.get(status, "http_error"),
                                             status=status, title=title))
        message = error.description or error.name
        if status == 413:  # Werkzeug's words name no limit
            message = (f"The request body is over the {app.config['MAX_CONTENT_LENGTH']:,}-byte "
                       "limit (TALLY_MAX_BODY_BYTES). Send less in one request: events in "
                       "batches of up to 1,000.")
        return error_response(TallyError(
            message, code=_HTTP_CODES.get(status, "http_error"), status=status, title=error.name))

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        uow.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        title = "Internal error" if wants_json() else _PAGE_TEXT[500][0]
        return error_response(TallyError(
            "Something went wrong on our side; nothing was charged twice. Try again.",
            code="internal_error", status=500, title=title))

    # Browsers ask for /favicon.ico on their own; answer it rather than log a 404 on every page.
    app.add_url_rule("/favicon.ico", FAVICON_ENDPOINT, lambda: send_from_directory(
        app.static_folder or "static", "favicon.ico", max_age=86400))
