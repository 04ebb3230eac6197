"""The OpenAPI 3.1 document of /v1, generated from the declarations.

It walks the app's registered /v1 routes; each view carries its `@operation`
(views/api/declare.py), whose pydantic models give the parameters, bodies and answers.
What every operation of a kind shares (key auth, the error answers, rate-limit headers,
`Idempotency-Key`, pagination) is added here, in one place. A route without a
declaration stops the document from being built, so none can be left out.
tests/test_openapi.py checks the document against the routes and OpenAPI 3.1;
tests/test_contract.py runs schemathesis against a live server with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import current_app
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from models.keys import KIND_ACCOUNT
from services import idempotency
from views.api.declare import Binary, OneOf, Operation, declared_operation
from views.api.json_schema import TallySchema, without_null
from views.api.openapi_text import DESCRIPTION, TAGS
from views.api.schemas.common import Error, ListOf, PageQuery, PaymentRequiredError, StripeError
from views.errors import STRIPE_PATHS

_ERRORS: dict[int, tuple[str, str]] = {  # status: (component name, description)
    400: ("BadRequest", "Bad input; `param` names the field."),
    401: ("Unauthorized", "No API key, or not a valid one (revoked, rotated, never existed); or an "
                          "X-Wallet-Auth signature refused (its own `code`)."),
    402: ("PaymentRequired", "Over a plan limit or out of prepaid credit (`usage_limit_exceeded`, "
                             "with `usage` and `upgrade_url`), the card was declined, or its "
                             "bank asks for 3-D Secure (`requires_action`)."),
    403: ("Forbidden", "A key of the wrong kind (`key_scope`), a role that may not do this "
                       "(`role_forbidden`), or paying before the email is verified "
                       "(`email_not_verified`)."),
    404: ("NotFound", "Not found, or not yours."),
    409: ("Conflict", "A conflict: the thing exists or is in the wrong state, or the "
                      "Idempotency-Key was used for another request (`idempotency_key_reused`) "
                      "or is still running (`idempotency_key_in_use`)."),
    413: ("PayloadTooLarge", "The body is over the size limit (2 MiB unless configured)."),
    415: ("UnsupportedMediaType", "A form body: send JSON with Content-Type: application/json."),
    429: ("TooManyRequests", "Over the plan's requests per minute; wait Retry-After seconds."),
    500: ("InternalError", "A transient failure; retry."),
    502: ("BadGateway", "Stripe refused the request."),
    503: ("ServiceUnavailable", "Stripe (or a webhook secret) is not reachable or not set up."),
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed in the window (a minute).",
    "X-RateLimit-Remaining": "Requests left in the window.",
    "X-RateLimit-Reset": "When the window resets, in Unix seconds.",
}
_PAGE_PARAMS = ("limit", "starting_after", "ending_before")
_SCHEMAS = "#/components/schemas/"


@dataclass(frozen=True)
class Route:
    path: str  # as in OpenAPI: /v1/keys/{key_id}
    method: str
    endpoint: str  # the Flask endpoint; its last part is the operationId
    declared: Operation
    same_as: str | None  # another route of the same view: "(same as ...)"

    @property
    def in_api(self) -> bool:
        return self.endpoint.startswith("api.")

    @property
    def mutating(self) -> bool:
        """POSTs under the API blueprint take Idempotency-Key (not Stripe's webhook)."""
        return self.method == "POST" and self.in_api

    @property
    def takes_json(self) -> bool:
        """POST and DELETE under the API blueprint read any body as a JSON object (views/api)."""
        return self.method in ("POST", "DELETE") and self.in_api


def routes() -> Iterator[Route]:
    """Every /v1 route of the app with its declaration, in the order they were registered."""
    rules = [r for r in current_app.url_map.iter_rules() if r.rule.startswith("/v1/")]
    for rule in rules:
        view = current_app.view_functions[rule.endpoint]
        declared = declared_operation(view)
        if declared is None:
            raise LookupError(f"{rule.endpoint} ({rule.rule}) has no @operation declaration")
        first = _first_rule(rule, view, rules)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            same_as = None
            if first is not rule:
                shown = _path(first)
                same_as = shown if method in (first.methods or ()) else f"{method_of(first)} {shown}"
            yield Route(_path(rule), method, rule.endpoint, declared, same_as)


def _first_rule(rule: Rule, view: Any, rules: list[Rule]) -> Rule:
    """The route named after the view (the others are its aliases), else the first."""
    mine = [r for r in rules if current_app.view_functions[r.endpoint] is view]
    named = [r for r in mine if r.endpoint.split(".")[-1] == view.__name__]
    return (named or mine)[0]


def method_of(rule: Rule) -> str:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})[0]


def _path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


# Schemas ---------------------------------------------------------------------------------


def _models(found: list[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    models: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (Error, "serialization"): None, (PaymentRequiredError, "serialization"): None,
        (StripeError, "serialization"): None}
    for route in found:
        declared = route.declared
        if not isinstance(declared.answer, Binary):
            models[(declared.answer, "serialization")] = None
        shapes = declared.body.shapes if isinstance(declared.body, OneOf) else (declared.body,)
        for shape in shapes:
            if shape is not None:
                models[(shape, "validation")] = None
    return list(models)


def _schemas(found: list[Route]) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """(the schema of each model, by (model, mode)), and the component schemas. List
    envelopes are written out where they are used (`{object: "list", data, has_more}`)."""
    pairs = _models(found)
    names = [model.__name__ for model, _ in pairs]
    if len(set(names)) != len(pairs):
        raise ValueError("two declared models share a name: " + ", ".join(sorted(names)))
    by_model, definitions = models_json_schema(
        pairs, ref_template=_SCHEMAS + "{model}", union_format="primitive_type_array",
        schema_generator=TallySchema)
    components = definitions.get("$defs", {})
    for (model, _mode), ref in by_model.items():
        if isinstance(model, type) and issubclass(model, ListOf):
            by_model[(model, _mode)] = components.pop(ref["$ref"].removeprefix(_SCHEMAS))
    return by_model, components


def _query_parameters(query: type[BaseModel]) -> list[dict[str, Any]]:
    schema = query.model_json_schema(schema_generator=TallySchema)
    required = set(schema.get("required", []))
    params: list[dict[str, Any]] = []
    for name, prop in schema["properties"].items():
        if issubclass(query, PageQuery) and name in _PAGE_PARAMS:
            params.append({"$ref": "#/components/parameters/" + name})
            continue
        description = prop.pop("description", "")
        params.append({"name": name, "in": "query", "required": name in required,
                       **({"description": description} if description else {}),
                       "schema": _query_schema(prop)})
    return params


def _query_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is text or absent, never JSON null."""
    schema = without_null(schema)
    if schema.get("default", 0) is None:
        schema.pop("default")
    return schema


# Operations -------------------------------------------------------------------------------


def error_statuses(route: Route) -> list[int]:
    declared = route.declared
    statuses = set(declared.errors)
    if declared.keys:
        statuses |= {401, 403, 429}
    if declared.body is not None or declared.query is not None or route.takes_json or "{" in route.path:
        statuses.add(400)  # a path parameter with a NUL character is a 400 (views/request_guard.py)
    if declared.body is not None or route.takes_json:
        statuses.add(413)
    if route.takes_json:
        statuses.add(415)
    if "{" in route.path:
        statuses.add(404)
    if route.mutating:
        statuses.add(409)
    if declared.stripe:
        statuses |= {502, 503}
    return sorted(statuses)


def _parameters(route: Route) -> list[dict[str, Any]]:
    declared = route.declared
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)]
    if declared.query is not None:
        params += _query_parameters(declared.query)
    params += [{"name": name, "in": "header", "required": True, "description": description,
                "schema": {"type": "string"}} for name, description in declared.headers]
    if route.mutating:
        params.append({"$ref": "#/components/parameters/IdempotencyKey"})
    return params


def _body(route: Route, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any] | None:
    body = route.declared.body
    if body is None:
        return None
    if isinstance(body, OneOf):
        schema: dict[str, Any] = {"anyOf": [schemas[(s, "validation")] for s in body.shapes]}
        required = True
    else:
        schema = schemas[(body, "validation")]
        required = any(f.is_required() for f in body.model_fields.values())
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _success(route: Route, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    answer = route.declared.answer
    if isinstance(answer, Binary):
        content = {media: {"schema": {"type": "string", "format": "binary",
                                      "contentMediaType": media}} for media in answer.media_types}
    else:
        content = {"application/json": {"schema": schemas[(answer, "serialization")]}}
    ok: dict[str, Any] = {"description": "OK" if route.declared.status == 200 else "Created",
                          "content": content}
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS} \
        if route.declared.keys else {}
    if route.mutating:
        headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
    if headers:
        ok["headers"] = headers
    return ok


def _operation(route: Route, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    declared = route.declared
    summary = declared.summary + (f" (same as {route.same_as})" if route.same_as else "")
    spec: dict[str, Any] = {"operationId": route.endpoint.split(".")[-1], "tags": [declared.tag],
                            "summary": summary}
    if declared.description:
        spec["description"] = declared.description
    if declared.keys:
        spec["security"] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]
        if KIND_ACCOUNT in declared.keys:
            spec["security"].append({"WalletAuth": []})
        spec["x-key-kinds"] = list(declared.keys)
        if declared.permission:
            spec["x-permission"] = declared.permission
    else:
        spec["security"] = []
    params = _parameters(route)
    if params:
        spec["parameters"] = params
    body = _body(route, schemas)
    if body is not None:
        spec["requestBody"] = body
    ok = _success(route, schemas)
    responses: dict[str, Any] = {str(declared.status): ok}
    for status in error_statuses(route):
        responses[str(status)] = _error_response(route, status)
    spec["responses"] = responses
    return spec


def _error_response(route: Route, status: int) -> dict[str, Any]:
    """Tally's error answer, or at Stripe's own paths the same in Stripe's shape."""
    name, description = _ERRORS[status]
    if not route.path.startswith(STRIPE_PATHS):
        return {"$ref": f"#/components/responses/{name}"}
    response: dict[str, Any] = {
        "description": description + " In Stripe's error shape.",
        "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "StripeError"}}}}
    if status == 429:
        response["headers"] = _too_many_requests_headers()
    return response


def _too_many_requests_headers() -> dict[str, Any]:
    return {"Retry-After": {"description": "Seconds to wait.", "required": True,
                            "schema": {"type": "integer"}},
            **{name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS}}


def _components(schemas: dict[str, Any]) -> dict[str, Any]:
    error_content = {"application/json": {"schema": {"$ref": _SCHEMAS + "Error"}}}
    responses: dict[str, Any] = {
        name: {"description": description, "content": error_content}
        for name, description in _ERRORS.values()}
    responses["PaymentRequired"]["content"] = {
        "application/json": {"schema": {"$ref": _SCHEMAS + "PaymentRequiredError"}}}
    responses["TooManyRequests"]["headers"] = _too_many_requests_headers()
    page = PageQuery.model_json_schema(schema_generator=TallySchema)["properties"]
    parameters: dict[str, Any] = {"IdempotencyKey": {
        "name": idempotency.HEADER, "in": "header", "required": False,
        "description": "A unique value per operation (a UUID), the same on every retry: the first "
                       "answer is replayed for 24 hours. With another request: 409 "
                       "`idempotency_key_reused`.",
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH}}}
    for name in _PAGE_PARAMS:
        prop = dict(page[name])
        parameters[name] = {"name": name, "in": "query", "required": False,
                            "description": prop.pop("description"), "schema": _query_schema(prop)}
    return {
        "schemas": schemas,
        "responses": responses,
        "parameters": parameters,
        "headers": {
            **{name: {"description": description, "schema": {"type": "integer"}}
               for name, description in _RATE_HEADERS.items()},
            "Idempotent-Replayed": {"description": "true on an answer replayed for an Idempotency-Key.",
                                    "schema": {"const": "true"}}},
        "securitySchemes": {
            "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                             "description": "A Tally API key (tly_...)."},
            "BearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "The same key as `Authorization: Bearer tly_...`."},
            "WalletAuth": {"type": "apiKey", "in": "header", "name": "X-Wallet-Auth",
                           "description": "ChainSecured: base64 of JSON `{typed_data, signature}`, an "
                                          "EIP-712 `BillingAuth` message signed by a linked wallet; "
                                          "acts as an account key. Each signature authorizes one "
                                          "state-changing request (then 401 "
                                          "`wallet_signature_replayed`)."},
        },
    }


def document(server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (under an app context: bounds and plans are configured)."""
    found = list(routes())
    tags = {name for name, _ in TAGS}
    for route in found:
        if route.declared.tag not in tags:
            raise ValueError(f"{route.endpoint}: unknown tag {route.declared.tag!r}")
    schemas, components = _schemas(found)
    paths: dict[str, dict[str, Any]] = {}
    for route in found:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Tally API", "version": "1", "description": DESCRIPTION},
        "tags": [{"name": name, "description": description} for name, description in TAGS],
        "paths": paths,
        "components": _components(components),
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
