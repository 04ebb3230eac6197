"""Tally: a self-hosted billing portal for API products.

`create_app()` is the factory used by `flask --app app ...`, gunicorn
(`gunicorn 'app:create_app()'`) and the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

import config
import models  # noqa: F401  (registers every model with SQLAlchemy and Alembic)
from extensions import csrf, db, limiter, login_manager, migrate, ping_when_idle
from interfaces import cli, jobs
from services import uow
from services.billing import gateway as stripe_gateway
from services.billing import plans
from views import (
    account,
    api,
    api_docs,
    auth,
    billing,
    errors,
    filters,
    headers,
    keys,
    members_page,
    membership,
    pages,
    payments,
    request_guard,
    staff,
    two_factor,
    wallets,
    webhooks,
)
from views import idempotency as idempotent
from views import session as web_session
from views.api import gate_path, generic_paths
from views.staff import billing_portal as staff_billing
from views.staff import price_plans as staff_pricing


class _SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    load_dotenv()
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        WTF_CSRF_TIME_LIMIT=None,  # tokens live as long as the session
    )
    app.config.from_mapping(config.from_environment(Path(app.instance_path)))
    if test_config:
        app.config.from_mapping(test_config)
        if "SQLALCHEMY_DATABASE_URI" in test_config:
            app.config["SQLALCHEMY_DATABASE_URI"] = config.normalise_database_url(
                test_config["SQLALCHEMY_DATABASE_URI"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    gate_path.init_app(app)  # POST /v1/authorize in front of Flask's routing, when it can be
    if app.config["PROXY_COUNT"]:
        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    generic_paths.init_app(app)  # /billing/... with an API key is the /v1 endpoint's
    app.session_interface = _SessionInterface()
    app.json.sort_keys = False  # type: ignore[attr-defined]  (answers keep the documented order)

    # pool_pre_ping, but only for connections idle a second or more (extensions.py).
    engine_options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    ping = engine_options.pop("pool_pre_ping", False)
    db.init_app(app)
    if ping:
        with app.app_context():
            ping_when_idle(db.engine)
    uow.init_app(app)  # first after_request hook, so it runs last: the request's one commit
    jobs.init_app(app)  # after-commit delivery of the outbox
    migrate.init_app(app, db)
    csrf.init_app(app)
    request_guard.init_app(app)  # NUL in the address or a form is a 400, not a database error
    # User loader (impersonation-aware), banner, expiry, and the read-only guard, which
    # must run before any other hook or view acts on a request.
    web_session.init_app(app)
    idempotent.init_app(app)  # Idempotency-Key of page forms, then every stored answer
    # Registered before the limiter: after_request hooks run in reverse order, so this one
    # sees the headers Flask-Limiter adds, which include Retry-After on every answer.
    app.after_request(_retry_after_only_when_refused)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to continue."
    stripe_gateway.init_app(app)
    plans.init_app(app)

    for module in (auth, account, members_page, two_factor, pages, keys, billing, payments, staff,
                   staff_billing, staff_pricing, api, api_docs, webhooks, wallets):
        app.register_blueprint(module.bp)
    csrf.exempt(api.bp)
    api.cache_keys(app)  # per-process API keys, when rate limits live in Redis
    csrf.exempt(webhooks.bp)
    errors.init_app(app)
    two_factor.init_app(app)
    membership.init_app(app)
    cli.init_app(app)

    filters.init_app(app)
    app.context_processor(lambda: {"test_mode": _test_mode(app)})
    app.after_request(_security_headers)
    return app


def _retry_after_only_when_refused(response):
    """Retry-After tells a client to wait before trying again (RFC 9110): on a 429 or 503
    only. Generic retry code reads it wherever it appears, so a 200 must not carry it."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def _test_mode(app: Flask) -> bool:
    key = app.config["STRIPE_SECRET_KEY"]
    return not key or key.startswith("sk_test_") or bool(app.config["STRIPE_API_BASE"])


def _security_headers(response):
    cacheable = request.endpoint in ("static", errors.FAVICON_ENDPOINT)
    return headers.add(response, https=request.is_secure, cacheable=cacheable)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """WAL and a busy timeout, so concurrent writers on SQLite wait instead of failing."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
