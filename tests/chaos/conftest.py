"""Chaos fixtures: Tally as in production (gunicorn workers, the schema built by the
migrations, PostgreSQL, Redis, Stripe at localstripe) on the test database, with the
app's database connections named so that a test can drop them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask

from extensions import db
from tests.conftest import WEBHOOK_SECRET, write_plans
from tests.support.chaos import with_application_name
from tests.support.servers import base_env, flask_cli

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UNLIMITED = 10**12


@dataclass(frozen=True)
class Deployment:
    env: dict[str, str]  # for gunicorn and the CLI
    database_url: str  # the test database, for the test's own checks and faults
    application_name: str  # what the app's PostgreSQL backends call themselves


def deploy(app: Flask, tmp_path: Path, localstripe_url: str, **plan: int | None) -> Deployment:
    """Build the schema with the migrations and return the environment of a production-like
    server; `plan` overrides the free plan's limits (unlimited by default)."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"chaos tests share rate limits through Redis; none at {REDIS_URL}: {exc}")
    with app.app_context():
        database_url = db.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        db.drop_all()
        db.session.remove()
        db.engine.dispose()
    name = f"tally-chaos-{uuid.uuid4().hex[:8]}"
    limits = {"apiCalls": None, "llmTokens": None, "storage": None,
              "requestsPerMinute": UNLIMITED, "lifetimeApiCalls": None, **plan}
    env = base_env(
        with_application_name(database_url, name), tmp_path,
        REDIS_URL=REDIS_URL, TALLY_RATELIMIT_PREFIX=f"chaos-{uuid.uuid4().hex}",
        TALLY_CONFIG_FILE=write_plans(tmp_path / "plans.json", free=limits),
        STRIPE_SECRET_KEY="sk_test_tally", STRIPE_PUBLISHABLE_KEY="pk_test_tally",
        STRIPE_API_BASE=localstripe_url, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    flask_cli(env, "db", "upgrade")
    return Deployment(env, database_url, name)


@pytest.fixture
def deployment(app: Flask, tmp_path: Path, localstripe_url: str) -> Iterator[Deployment]:
    yield deploy(app, tmp_path, localstripe_url)
