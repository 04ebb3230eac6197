"""`flask --app app db upgrade` builds exactly the schema the models describe, on SQLite and
(when TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from extensions import db

pytestmark = pytest.mark.money  # runs on PostgreSQL too


def test_upgrade_matches_models_and_downgrades_cleanly(app, backend):
    with app.app_context():
        if backend == "postgresql":
            db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            db.drop_all()
        db.session.commit()
        upgrade()
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
        assert diff == []
        downgrade(revision="base")
        with db.engine.connect() as connection:
            tables = set(db.inspect(connection).get_table_names()) - {"alembic_version"}
        assert tables == set()
