"""Schemathesis against the running app: every /v1 operation of the OpenAPI document gets a
bounded number of generated requests over real HTTP (a live server, Stripe calls going to
localstripe), and every answer must be no 5xx and conform to the document: a documented
status code, content type, headers and body schema.

The document leaves objects open so clients may ignore new fields; here every object that
lists its properties is closed, so a field a view adds without documenting it fails.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from extensions import db
from models import Account
from services import uow
from services.identity import keys
from tests.conftest import write_plans
from tests.support.staff import make_staff

# `money`: also on PostgreSQL when TEST_DATABASE_URL is set (it refuses text SQLite takes).
pytestmark = [pytest.mark.contract, pytest.mark.money]

# Examples per operation and per generation mode; ~50 operations. TALLY_CONTRACT_EXAMPLES
# raises it for a longer hunt (the default keeps the run around a minute on 2 cores).
EXAMPLES = int(os.environ.get("TALLY_CONTRACT_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXCLUDED = {
    # Stripe signs each webhook over its exact body with the endpoint's secret; generated
    # bodies cannot carry a valid Stripe-Signature, so every call would be the same 400.
    # tests/test_topups.py and test_subscriptions.py send real signed events instead.
    "POST /v1/billing/webhook",
}


@pytest.fixture
def app_config(tmp_path):
    """The shipped limits, but a request rate the run cannot reach: 429 is documented, yet a
    run that spends its examples on 429s explores nothing."""
    return {"TALLY_CONFIG_FILE": write_plans(
        tmp_path / "plans.json",
        free={"apiCalls": 1000, "llmTokens": 10000, "storage": 104857600,
              "requestsPerMinute": 100000, "lifetimeApiCalls": None},
        pro={"apiCalls": 100000, "llmTokens": 1000000, "storage": 10737418240,
             "requestsPerMinute": 100000, "price": {"amount": 4900, "currency": "usd", "interval": "month"}})}


def closed(schema: Any) -> Any:
    """A copy where every object schema that lists properties refuses others."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema["components"]["schemas"])
    for methods in schema["paths"].values():
        walk(methods)
    return schema


def exercise(strategies: list[Any], base_url: str, headers: Callable[[], dict[str, str]]) -> None:
    """Call one operation with generated cases (a fixed, bounded number) and check each answer."""

    @hypothesis.settings(max_examples=EXAMPLES * len(strategies), deadline=None, database=None,
                         derandomize=True, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=st.one_of(strategies))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers(), checks=CHECKS)

    run()


def test_api_conforms_to_its_openapi_document(app, live_server, customer, backend):
    staff = make_staff(app)
    with app.app_context():
        account = db.session.get(Account, customer.account_id)
        known = {"account_id": account.id, "customer_id": account.customer_id, "name": "apiCalls"}
        db.session.remove()
    doc = closed(app.test_client().get("/v1/openapi.json").get_json())
    schema = schemathesis.openapi.from_dict(doc)
    headers_for = {"account": customer.headers, "usage": customer.headers, "staff": staff.headers}

    def throwaway_key() -> dict[str, str]:
        """Rotating with no body rotates the calling key: give each such call its own key."""
        with app.app_context():
            with uow.unit():
                issued = keys.issue_key(account=db.session.get(Account, customer.account_id),
                                        kind="account", name="contract rotation")
            db.session.remove()
        return {"X-Api-Key": issued.plaintext}

    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in EXCLUDED:
            continue
        kinds = operation.definition.raw.get("x-key-kinds", [])
        headers = headers_for[kinds[0]] if kinds else {}
        params = {p.name for p in operation.path_parameters}
        strategies = [operation.as_strategy(generation_mode=mode)
                      for mode in (schemathesis.GenerationMode.POSITIVE,
                                   schemathesis.GenerationMode.NEGATIVE)]
        if params and params <= set(known) and operation.method.upper() != "DELETE":
            # Also the real account, customer or meter, so answers other than 404 are checked.
            strategies.append(operation.as_strategy(
                path_parameters={name: known[name] for name in params}))

        send = throwaway_key if operation.label == "POST /v1/keys/rotate" else (lambda h=headers: h)
        try:
            exercise(strategies, live_server.url, send)
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure
            failures.append(f"{operation.label}:\n{exc}")
        ran += 1
    assert ran >= 45
    assert not failures, f"{len(failures)} operations broke the contract:\n\n" + "\n\n".join(failures)
