"""The API's documentation: the OpenAPI document at `GET /v1/openapi.json` (no key) and
a page for people at `/docs/api`, both from views/api/openapi.py's one description.

The page is drawn from the served document itself (resolving its `$ref`s), so what a
person reads and what a client generator reads cannot drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from markupsafe import Markup, escape

from views.api.openapi import document

bp = Blueprint("api_docs", __name__)

KEY_LABELS = {"account": "account key", "usage": "usage key", "staff": "staff key"}
# Shared parameters the page's introduction explains once; an endpoint shows a badge instead.
CONVENTIONS = {"IdempotencyKey": "Idempotency-Key", "limit": "paged", "starting_after": "paged",
               "ending_before": "paged"}
SAMPLE_TIME = "2026-01-31T09:30:00+00:00"


@bp.get("/v1/openapi.json")
def openapi():
    response = jsonify(document(request.url_root.rstrip("/")))
    response.headers["Access-Control-Allow-Origin"] = "*"  # for Swagger UI and client generators
    return response


@bp.get("/docs/api")
def page():
    doc = document(request.url_root.rstrip("/"))
    return render_template("api_docs.html", doc=doc, sections=sections(doc), objects=objects(doc),
                           base_url=doc["servers"][0]["url"], intro=markdown(doc["info"]["description"]))


# The page's model ----------------------------------------------------------------------


@dataclass
class Field:
    name: str
    type: Markup
    required: bool
    description: Markup


@dataclass
class Endpoint:
    id: str
    method: str
    path: str
    summary: str
    description: Markup
    keys: list[str]
    conventions: list[str]  # "Idempotency-Key", "paged"
    params: list[Field]
    body: list[tuple[str, list[Field]]]  # (variant title, fields); one untitled variant usually
    responses: list[tuple[str, str]]  # (status, description)
    returns: Markup
    curl: str
    example_status: str
    example: str


@dataclass
class Section:
    name: str
    slug: str
    description: str
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass
class Object:
    name: str
    description: Markup
    fields: list[Field]


def sections(doc: dict[str, Any]) -> list[Section]:
    by_tag = {t["name"]: Section(t["name"], slug(t["name"]), t.get("description", ""))
              for t in doc["tags"]}
    base = doc.get("servers", [{"url": ""}])[0]["url"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            by_tag[op["tags"][0]].endpoints.append(_endpoint(doc, base, path, method.upper(), op))
    return [s for s in by_tag.values() if s.endpoints]


def objects(doc: dict[str, Any]) -> list[Object]:
    """The component schemas with fields, for the reference at the end of the page (request
    bodies are shown with their endpoint)."""
    return [Object(name, markdown(schema.get("description", ""), inline=True), fields(doc, schema))
            for name, schema in doc["components"]["schemas"].items()
            if schema.get("properties") and not name.endswith("Request")]


def _endpoint(doc: dict[str, Any], base: str, path: str, method: str, op: dict[str, Any]) -> Endpoint:
    shared = [CONVENTIONS[_ref_name(p)] for p in op.get("parameters", []) if _ref_name(p) in CONVENTIONS]
    params = [resolve(doc, p) for p in op.get("parameters", [])]
    body_schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    statuses = sorted(op["responses"])
    ok = statuses[0]
    ok_content = op["responses"][ok].get("content", {})
    media, ok_media = next(iter(ok_content.items()), ("application/json", {}))
    if media == "application/json":
        example = json.dumps(sample(doc, ok_media.get("schema", {}), request=False), indent=2)
    else:
        example = f"({media} bytes)"
    return Endpoint(
        id=op["operationId"], method=method, path=path, summary=op.get("summary", ""),
        description=markdown(op.get("description", "")),
        keys=[KEY_LABELS[k] for k in op.get("x-key-kinds", [])],
        conventions=list(dict.fromkeys(shared)),
        params=[Field(f"{p['name']} ({p['in']})", type_label(doc, p.get("schema", {})),
                      p.get("required", False), markdown(p.get("description", ""), inline=True))
                for p, raw in zip(params, op.get("parameters", []), strict=True)
                if _ref_name(raw) not in CONVENTIONS],
        body=body_fields(doc, body_schema) if body_schema else [],
        responses=[(s, _response_description(doc, op["responses"][s])) for s in statuses],
        returns=type_label(doc, ok_media.get("schema", {})) if media == "application/json"
        else Markup("a PDF"),
        curl=curl(doc, base, path, method, op, body_schema, params),
        example_status=ok, example=example)


def _response_description(doc: dict[str, Any], response: dict[str, Any]) -> str:
    return resolve(doc, response).get("description", "")


def body_fields(doc: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, list[Field]]]:
    if "anyOf" in schema:
        return [(f"Or {_ref_name(alt)}" if i else _ref_name(alt), fields(doc, alt))
                for i, alt in enumerate(schema["anyOf"])]
    return [("", fields(doc, schema))]


def fields(doc: dict[str, Any], schema: dict[str, Any]) -> list[Field]:
    schema = resolve(doc, schema)
    required = set(schema.get("required", []))
    return [Field(name, type_label(doc, prop), name in required,
                  markdown(resolve(doc, prop).get("description", ""), inline=True))
            for name, prop in schema.get("properties", {}).items()]


def curl(doc: dict[str, Any], base: str, path: str, method: str, op: dict[str, Any],
         body: dict[str, Any] | None, params: list[dict[str, Any]]) -> str:
    url = base + re.sub(r"{(\w+)}", lambda m: "<" + m.group(1) + ">", path)
    if any(p["name"] == "limit" for p in params):
        url += "?limit=10"
    parts = ["curl -s"]
    if method == "DELETE" or (method == "POST" and body is None):
        parts.append(f"-X {method}")
    parts.append(f"'{url}'")
    if op.get("x-key-kinds"):
        parts.append('-H "X-Api-Key: $TALLY_API_KEY"')
    if any(p["name"] == "Idempotency-Key" for p in params):
        parts.append('-H "Idempotency-Key: $(uuidgen)"')
    if body is not None and method == "POST":
        example = sample(doc, body, request=True)
        parts.append("-H 'Content-Type: application/json'")
        parts.append(f"-d '{json.dumps(example)}'")
    return " \\\n     ".join(parts)


# Reading schemas -------------------------------------------------------------------------


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _ref_name(schema: dict[str, Any]) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1]


def type_label(doc: dict[str, Any], schema: dict[str, Any]) -> Markup:
    """A short type, with object names linked to their reference on the page."""
    name = _ref_name(schema)
    if name and doc["components"]["schemas"][name].get("properties") and not name.endswith("Request"):
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    schema = resolve(doc, schema)
    if "const" in schema:
        return escape(json.dumps(schema["const"]))
    if "enum" in schema:
        return escape(" | ".join(str(v) for v in schema["enum"]))
    if "anyOf" in schema:
        return Markup(" or ").join(type_label(doc, s) for s in schema["anyOf"])
    properties = schema.get("properties", {})
    if properties.get("object", {}).get("const") == "list" and "items" in properties.get("data", {}):
        return Markup("list of ") + type_label(doc, properties["data"]["items"])
    kind = schema.get("type", "any")
    labels = []
    for k in kind if isinstance(kind, list) else [kind]:
        if k == "array":
            labels.append(Markup("array of ") + type_label(doc, schema.get("items", {})))
        elif k == "string" and schema.get("format"):
            labels.append(escape(f"string ({schema['format']})"))
        else:
            labels.append(escape(k))
    return Markup(" or ").join(labels)


def sample(doc: dict[str, Any], schema: dict[str, Any], *, request: bool, depth: int = 0) -> Any:
    """An example value: the schema's own `examples`, else one made from its type. A request
    example has the required fields and the optional ones that carry an example."""
    schema = resolve(doc, schema)
    if "examples" in schema:
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return sample(doc, options[0], request=request, depth=depth)
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        if depth > 4:
            return {}
        required = set(schema.get("required", []))
        return {name: sample(doc, prop, request=request, depth=depth + 1)
                for name, prop in schema.get("properties", {}).items()
                if not request or name in required or "examples" in resolve(doc, prop)}
    if kind == "array":
        return [sample(doc, schema.get("items", {}), request=request, depth=depth + 1)]
    if kind == "integer":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    if kind == "string":
        return {"date-time": SAMPLE_TIME, "uri": "https://example.com", "email": "ada@example.com"}.get(
            schema.get("format", ""), "string")
    return None


# Text ------------------------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def markdown(text: str, *, inline: bool = False) -> Markup:
    """The little Markdown the document uses: paragraphs, `code`, **bold** and *emphasis*."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", text.strip()):
        html = str(escape(" ".join(para.split())))
        html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
        html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
        html = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", html)
        paragraphs.append(html if inline else f"<p>{html}</p>")
    return Markup(" ".join(paragraphs) if inline else "".join(paragraphs))
