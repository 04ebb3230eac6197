"""The database role the app runs as, with the least it needs (PostgreSQL).

Migrations run as the owner of the tables (DATABASE_MIGRATION_URL); the app may run as
another role (DATABASE_URL) that can read and write every table but `audit_events`, which
it may only read and insert into: no UPDATE, DELETE or TRUNCATE, whatever the app's code
does. `grant_app_role` gives exactly that; run it as the owner after every migration
(`flask --app app grant-app-role ROLE`; `make serve` does when DATABASE_MIGRATION_URL is
set), so tables a migration adds are covered too.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from models.audit import AuditEvent

APPEND_ONLY = (AuditEvent.__tablename__,)
READ_ONLY = ("alembic_version",)


def grant_app_role(connection: Connection, role: str) -> dict[str, list[str]]:
    """Grant `role` what the app needs in the current schema; returns the privileges given,
    by table. Raises LookupError for a role that does not exist."""
    if connection.dialect.name != "postgresql":
        raise RuntimeError("A separate, least-privilege app role is for PostgreSQL.")
    if not connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
        raise LookupError(f"No such database role: {role}")
    quote = connection.dialect.identifier_preparer.quote
    who = quote(role)
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    tables = list(connection.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
        {"s": schema}).scalars())
    connection.execute(text(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {who}"))
    given: dict[str, list[str]] = {}
    for table in tables:
        name = f"{quote(schema)}.{quote(table)}"
        connection.execute(text(f"REVOKE ALL ON {name} FROM {who}"))
        privileges = (["SELECT"] if table in READ_ONLY else ["SELECT", "INSERT"]
                      if table in APPEND_ONLY else ["SELECT", "INSERT", "UPDATE", "DELETE"])
        connection.execute(text(f"GRANT {', '.join(privileges)} ON {name} TO {who}"))
        given[table] = privileges
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quote(schema)} TO {who}"))
    return given
