"""The OpenAPI document: it lists exactly the registered /v1 routes, it is valid OpenAPI 3.1,
it is served without a key, and the API page shows every operation in it."""

from __future__ import annotations

import re

import schemathesis
from openapi_spec_validator import validate

from tests.conftest import login

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _registered(app) -> dict[tuple[str, str], str]:
    """(OpenAPI path, method) -> Flask endpoint, for every route under /v1."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            for method in rule.methods - IGNORED_METHODS:
                routes[(path, method)] = rule.endpoint
    return routes


def _documented(doc) -> dict[tuple[str, str], str]:
    return {(path, method.upper()): op["operationId"]
            for path, methods in doc["paths"].items() for method, op in methods.items()}


def test_document_lists_exactly_the_registered_routes(app, client):
    doc = client.get("/v1/openapi.json").get_json()
    registered, documented = _registered(app), _documented(doc)
    assert sorted(set(registered) - set(documented)) == [], "routes missing from the document"
    assert sorted(set(documented) - set(registered)) == [], "documented routes that do not exist"
    for route, endpoint in registered.items():  # operationId is the Flask endpoint's name
        assert documented[route] == endpoint.split(".")[-1], route


def test_document_is_valid_openapi_31(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200 and "X-Api-Key" not in response.request.headers
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises with the path of the fault
    schema = schemathesis.openapi.from_dict(doc)  # schemathesis can load every operation
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in doc["paths"].values())


def test_document_states_the_conventions(client):
    doc = client.get("/v1/openapi.json").get_json()
    assert doc["servers"] == [{"url": "http://localhost"}]
    assert set(doc["components"]["securitySchemes"]) == {"ApiKeyHeader", "BearerAuth", "WalletAuth"}
    # A wallet signature acts as an account key: offered wherever an account key is taken.
    assert {"WalletAuth": []} in doc["paths"]["/v1/billing/balance"]["get"]["security"]
    assert {"WalletAuth": []} not in doc["paths"]["/v1/customers"]["get"]["security"]
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "code", "message"] and "param" in error["properties"]
    limited = doc["components"]["responses"]["TooManyRequests"]["headers"]
    assert {"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(limited)
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            names = {p.get("$ref", "").rsplit("/", 1)[-1] for p in op.get("parameters", [])}
            if method == "post" and path != "/v1/billing/webhook":
                assert "IdempotencyKey" in names, f"POST {path} without Idempotency-Key"
                assert "409" in op["responses"], path
            if op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get(
                    "schema", {}).get("properties", {}).get("has_more"):
                assert {"limit", "starting_after", "ending_before"} <= names, f"{path} lists unpaged"
            if op.get("x-key-kinds"):
                assert {"401", "403", "429"} <= set(op["responses"]), path
    usage_limit = doc["paths"]["/v1/authorize"]["post"]["responses"]["402"]
    assert usage_limit["$ref"].endswith("/PaymentRequired")


def test_api_page_shows_every_operation(client, customer):
    doc = client.get("/v1/openapi.json").get_json()
    html = client.get("/docs/api").get_data(as_text=True)  # public, like the document
    assert html.count('data-testid="endpoint"') == sum(len(m) for m in doc["paths"].values())
    for path in ("/v1/billing/payment-intents", "/v1/authorize", "/v1/accounts/{account_id}/credits"):
        assert f'<code class="endpoint-path">{path}</code>' in html
    assert "Idempotency-Key" in html and "/v1/openapi.json" in html

    login(client, customer)
    dashboard = client.get("/").get_data(as_text=True)
    assert 'href="/docs/api"' in dashboard
