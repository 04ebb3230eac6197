"""The audit log is append-only in the database too, TRUNCATE included, and the app can run
as a role that may only read and insert into it while migrations run as the owner
(`flask --app app grant-app-role`, and `make serve` with DATABASE_MIGRATION_URL).
PostgreSQL only: these are PostgreSQL's triggers and privileges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from flask_migrate import upgrade
from sqlalchemy import make_url, text

from app import create_app
from extensions import db
from services import uow
from services.identity import accounts
from services.staff import audit
from services.staff.audit import Actor
from tests.support.localstripe import REPO_ROOT, free_port
from tests.support.staff import make_staff

pytestmark = pytest.mark.money  # the PostgreSQL run is the one that counts

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def postgresql(backend):
    if backend != "postgresql":
        pytest.skip("PostgreSQL's triggers and roles")


def plain_url(app, username: str | None = None) -> str:
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    if username:
        url = url.set(username=username, password=None)
    return url.render_as_string(hide_password=False)


def audit_rows(app) -> int:
    with psycopg.connect(plain_url(app), autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_events").fetchone()[0])


def refused(database_url: str, sql: str) -> str:
    """Run `sql`; returns PostgreSQL's error (the test fails if it ran)."""
    with psycopg.connect(database_url, autocommit=True) as conn, pytest.raises(psycopg.Error) as error:
        conn.execute(sql)
    return str(error.value)


def migrated(app) -> None:
    with app.app_context():
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.commit()
        upgrade()
        db.session.remove()


@pytest.mark.parametrize("schema", ["create_all", "migrations"])
def test_truncate_is_refused_even_for_the_owner(app, postgresql, schema):
    if schema == "migrations":
        migrated(app)
    with app.app_context():
        with uow.unit():
            audit.record(Actor.cli(), "test.row")
        db.session.remove()
    for sql in ("TRUNCATE audit_events", "TRUNCATE audit_events CASCADE",
                "DELETE FROM audit_events", "UPDATE audit_events SET reason = 'x'"):
        assert "append-only" in refused(plain_url(app), sql), sql
    assert audit_rows(app) == 1


@pytest.fixture
def app_role(app, postgresql) -> Iterator[str]:
    """A login role of its own (roles are shared by the whole server), dropped afterwards."""
    role = f"tally_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(plain_url(app), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
    yield role
    with psycopg.connect(plain_url(app), autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_the_app_runs_as_a_role_that_can_only_insert_and_read_the_audit_log(app, app_role):
    migrated(app)
    granted = app.test_cli_runner().invoke(args=["grant-app-role", app_role])
    assert granted.exit_code == 0, granted.output
    assert json.loads(granted.output)["audit_events"] == ["SELECT", "INSERT"]
    limited = create_app({**{k: app.config[k] for k in (
        "TESTING", "SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "RATELIMIT_STORAGE_URI",
        "RATELIMIT_KEY_PREFIX")}, "SQLALCHEMY_DATABASE_URI": plain_url(app, app_role)})
    # The app works as that role: sign-up, a staff grant (ledger and audit row), reads.
    with limited.app_context(), uow.unit():
        signup = accounts.sign_up(email="role@example.com", password="role-password-1", name="Role")
        account_id, key = signup.account.id, signup.api_key
    staff = make_staff(limited)
    client = limited.test_client()
    credit = client.post(f"/v1/accounts/{account_id}/credits", headers=staff.headers,
                         json={"amount": 500, "reason": "Role check"})
    assert credit.status_code == 201, credit.get_json()
    assert client.get("/v1/billing/balance", headers={"X-Api-Key": key}).get_json()["balance"] == 500
    assert client.post("/v1/events", headers={"X-Api-Key": key},
                       json={"id": "e1", "event_name": "api_call"}).get_json()["accepted"] == 1
    rows = audit_rows(app)
    assert rows >= 1
    # Whatever the app's code did, this role cannot change or remove the log.
    as_app = plain_url(app, app_role)
    for sql in ("UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events",
                "TRUNCATE audit_events"):
        assert "permission denied" in refused(as_app, sql), sql
    assert "must be owner" in refused(as_app, "DROP TABLE audit_events")
    assert audit_rows(app) == rows
    with limited.app_context():
        db.engine.dispose()
    # Unknown roles and SQLite are refused with a clear message.
    missing = app.test_cli_runner().invoke(args=["grant-app-role", "no_such_role_x"])
    assert missing.exit_code != 0 and "No such database role" in missing.output


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/v1/billing/config", timeout=2).close()
        return True
    except (OSError, urllib.error.URLError):
        return False


def test_make_serve_migrates_as_the_owner_and_serves_as_the_app_role(app, app_role, tmp_path):
    with app.app_context():
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "TALLY_"))}
    env.update(DATABASE_URL=plain_url(app, app_role), DATABASE_MIGRATION_URL=plain_url(app),
               REDIS_URL=REDIS_URL, SECRET_KEY="serve-test", BIND=f"127.0.0.1:{port}",
               WEB_CONCURRENCY="1", TALLY_RATELIMIT_PREFIX=f"serve-{uuid.uuid4().hex}")
    with (tmp_path / "serve.log").open("w+") as log:
        server = subprocess.Popen(["bash", "devtools/serve.sh"], cwd=REPO_ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while not answers(url):
                log.seek(0)
                assert server.poll() is None and time.monotonic() < deadline, log.read()
                time.sleep(0.2)
            with pytest.raises(urllib.error.HTTPError) as unknown_key:  # a key lookup: a query
                urllib.request.urlopen(urllib.request.Request(
                    url + "/v1/me", headers={"X-Api-Key": "tly_" + "0" * 40}), timeout=30)
            assert unknown_key.value.code == 401
            with psycopg.connect(plain_url(app), autocommit=True) as conn:
                users = {row[0] for row in conn.execute(
                    "SELECT usename FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")}
                can = conn.execute(
                    "SELECT has_table_privilege(%s, 'audit_events', 'INSERT'), "
                    "has_table_privilege(%s, 'audit_events', 'UPDATE'), "
                    "has_table_privilege(%s, 'audit_events', 'TRUNCATE'), "
                    "has_table_privilege(%s, 'accounts', 'UPDATE')", (app_role,) * 4).fetchone()
            assert app_role in users  # the workers connected as the app role
            assert can == (True, False, False, True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
