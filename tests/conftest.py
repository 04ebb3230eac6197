"""Fixtures: the app on SQLite (and PostgreSQL for money tests when TEST_DATABASE_URL is
set), a real localstripe server, a live HTTP server for browsers and concurrency, and
helpers to sign up customers and log in.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import make_server

from app import create_app
from extensions import db
from models import Meter
from models.usage import default_meter_rows
from services import uow
from services.identity import accounts
from tests.support.localstripe import (
    STRIPE_JS_PATH,
    free_port,
    register_webhook,
    running_localstripe,
)

WEBHOOK_SECRET = "whsec_tally_test_secret"
PASSWORD = "correct-horse-battery"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Money and concurrency tests (marked `money`) also run on PostgreSQL; chaos tests
    (marked `chaos`) run only there."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("chaos"):
        skip = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"),
                                  reason="chaos tests run on PostgreSQL: set TEST_DATABASE_URL")
        metafunc.parametrize("backend", [pytest.param("postgresql", marks=skip)], scope="function")
    elif "backend" in metafunc.fixturenames:
        backends = ["sqlite"]
        if os.environ.get("TEST_DATABASE_URL") and metafunc.definition.get_closest_marker("money"):
            backends.append("postgresql")
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    with running_localstripe() as base_url:
        yield base_url


@pytest.fixture(scope="session")
def stripe_client(localstripe_url: str) -> stripe.StripeClient:
    """What a test uses to act as Stripe.js or the Stripe dashboard would."""
    return stripe.StripeClient("sk_test_tally", base_addresses={"api": localstripe_url})


def _database_url(backend: str, tmp_path: Path) -> str:
    if backend == "postgresql":
        return os.environ["TEST_DATABASE_URL"]
    return f"sqlite:///{tmp_path / 'tally.db'}"


@pytest.fixture
def backend() -> str:  # replaced by the parametrisation above
    return "sqlite"


@pytest.fixture
def app_config() -> dict:
    """Extra configuration for the app; a test module overrides this fixture to change plans."""
    return {}


def write_plans(path: Path, **plans: dict) -> str:
    """A plans file in the shipped shape; returns its path for TALLY_CONFIG_FILE."""
    path.write_text(json.dumps({"billing": {"plans": plans}}))
    return str(path)


# What the public schema looked like right after the last create_all (tables and indexes,
# triggers, functions, constraints, columns with their types and defaults), so the next
# test may empty the tables instead of making them again.
_SCHEMA_SHAPE = text("""
SELECT (SELECT string_agg(relname::text || relkind::text, ',' ORDER BY relname) FROM pg_class
         WHERE relnamespace = 'public'::regnamespace),
       (SELECT md5(string_agg(t.tgname::text || t.tgenabled::text, ',' ORDER BY t.tgname))
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal),
       (SELECT md5(string_agg(proname::text || prosrc, ',' ORDER BY proname)) FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace),
       (SELECT md5(string_agg(conname::text || pg_get_constraintdef(oid), ',' ORDER BY conname))
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
       (SELECT md5(string_agg(a.attrelid::regclass::text || a.attname::text
                              || format_type(a.atttypid, a.atttypmod) || a.attnotnull::text
                              || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                              ',' ORDER BY a.attrelid::regclass::text, a.attnum))
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0
           AND NOT a.attisdropped)""")
_made: dict[str, object] = {}


def _empty_postgresql() -> None:
    """An empty database in the models' shape: TRUNCATE every table when the schema is
    still exactly what the last create_all made (0.05 s), else drop it and create it again
    (0.2 to 0.7 s: a test migrated, or changed a table, column, index, constraint, trigger
    or function)."""
    url = str(db.engine.url)
    if _made.get(url) == tuple(db.session.execute(_SCHEMA_SHAPE).one()):
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text("SET LOCAL session_replication_role = replica"))  # audit's
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))  # trigger
        db.session.execute(Meter.__table__.insert(), default_meter_rows())  # as create_all does
        db.session.commit()
        return
    db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    db.session.commit()
    db.create_all()
    _made[url] = tuple(db.session.execute(_SCHEMA_SHAPE).one())
    db.session.commit()


@pytest.fixture
def app(backend: str, tmp_path: Path, localstripe_url: str, app_config: dict) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": _database_url(backend, tmp_path),
        "STRIPE_SECRET_KEY": "sk_test_tally",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_tally",
        "STRIPE_API_BASE": localstripe_url,
        "STRIPE_JS_URL": localstripe_url + STRIPE_JS_PATH,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Each app gets its own in-memory rate-limit window.
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        "OUTBOX_DELIVERY": "inline",  # after-commit work (email) is done before the answer
        "PASSWORD_HASH_CHEAP": True,  # Argon2 at its cheapest (services/identity/accounts.py)
        **app_config,
    })
    with app.app_context():
        if backend == "postgresql":
            _empty_postgresql()
        else:
            db.create_all()
        db.session.remove()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Customer:
    email: str
    password: str
    account_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.api_key}


@pytest.fixture
def make_customer(app: Flask):
    """Sign up a customer through the service; returns its login, account and first key."""
    counter = iter(range(1, 1000))

    def make(name: str = "Acme") -> Customer:
        n = next(counter)
        email = f"{name.lower().replace(' ', '')}{n}@example.com"
        with app.app_context():
            with uow.unit():
                result = accounts.sign_up(email=email, password=PASSWORD, name=f"{name} {n}")
            account_id = result.account.id
            db.session.remove()
        return Customer(email, PASSWORD, account_id, result.api_key)

    return make


@pytest.fixture
def customer(make_customer) -> Customer:
    return make_customer()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, who: Customer) -> str:
    """Log in through the real form; returns a CSRF token for later posts."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": who.email, "password": who.password,
                                           "csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)
    return csrf_token(client.get("/").get_data(as_text=True))


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_server(app: Flask, localstripe_url: str) -> Iterator[LiveServer]:
    """The app over real HTTP (threaded), with localstripe's webhooks pointed at it."""
    server = LiveServer(app).start()
    register_webhook(localstripe_url, server.url + "/v1/billing/webhook", WEBHOOK_SECRET)
    yield server
    server.stop()


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives; yields the
    controller (`.port`) and the inbox (`.messages`)."""
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.messages: list[email.message.EmailMessage] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(email.message_from_bytes(envelope.content,
                                                          policy=email.policy.default))
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def mail(app: Flask, smtp_server):
    """The app's email delivered to a real SMTP server on loopback; yields its inbox."""
    controller, inbox = smtp_server
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{controller.port}"
    return inbox


def text_of(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def signup_link(message: email.message.EmailMessage) -> str:
    """The path (with its token) of the link in a sign-up email."""
    match = re.search(r"https?://[^/\s]+(/signup/confirm\?token=\S+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)
