"""The client's tests run against a real Tally: the app, its live HTTP server and a signed-up
customer come from Tally's own fixtures (tests/conftest.py), on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_support import API_CALLS

from tests.conftest import (  # noqa: F401  (fixtures)
    app,
    backend,
    customer,
    live_server,
    localstripe_url,
    make_customer,
    write_plans,
)


@pytest.fixture
def app_config(tmp_path: Path) -> dict:
    return {"TALLY_CONFIG_FILE": write_plans(tmp_path / "plans.json", free={
        "apiCalls": API_CALLS, "llmTokens": 10**6, "storage": 10**9, "requestsPerMinute": 1000,
        "lifetimeApiCalls": None})}
