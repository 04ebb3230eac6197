"""CLI commands (`flask --app app seed-demo`, ...), each one unit of work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import ScriptInfo, pass_script_info, with_appcontext

from extensions import db
from interfaces import jobs, staff_cli
from models import roles
from services import uow
from services.errors import TallyError
from services.identity import accounts


@click.command("seed-demo")
@with_appcontext
@uow.unit()
def seed_demo() -> None:
    """Create (or find) the demo customer; print one line of JSON with a fresh key."""
    click.echo(json.dumps(accounts.seed_demo()))


@click.command("close-period")
@with_appcontext
def close_period() -> None:
    """Post closed days of rated usage, issue last month's usage statements, end expired
    grace periods. Idempotent: run it daily from cron; a second run issues nothing. A
    batch of accounts per transaction (jobs.close_period): resumable, and two runs at once
    share the work."""
    result = jobs.close_period()
    click.echo(json.dumps({"days_posted": result.days_posted,
                           "statements_issued": result.statements,
                           "downgraded_to_free": result.downgraded}))


@click.command("purge-idempotency-keys")
@with_appcontext
def purge_idempotency_keys() -> None:
    """Delete stored Idempotency-Key answers older than 24 hours (in batches); run it daily
    from cron."""
    click.echo(json.dumps({"deleted": jobs.purge_idempotency_keys()}))


@click.command("purge-usage-events")
@with_appcontext
def purge_usage_events() -> None:
    """Remove raw usage events (and the ids that deduplicate them) older than
    TALLY_EVENT_RETENTION_DAYS, a whole month at a time, and on PostgreSQL create the
    coming months' partitions; rollups and counters are kept. Run it daily from cron;
    resumable, and two runs at once do each step once."""
    click.echo(json.dumps(jobs.purge_usage_events()))


@click.command("deliver-outbox")
@click.option("--loop", is_flag=True, help="Keep delivering, every --every seconds, until stopped.")
@click.option("--every", default=10.0, show_default=True, type=float)
@with_appcontext
def deliver_outbox(loop: bool, every: float) -> None:
    """Deliver queued emails and other after-commit work that is due (retries included).

    Prints {"sent", "retried", "failed"} per round. Run it from cron every minute, or
    with --loop as a service.
    """
    while True:
        click.echo(json.dumps(jobs.deliver_outbox().as_dict()))
        if not loop:
            return
        time.sleep(every)


@click.command("mcp")
@click.option("--transport", type=click.Choice(["stdio", "streamable-http"]), default="stdio",
              show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="streamable-http: the address to listen on (anyone who reaches it acts with the key)")
@click.option("--port", default=8765, show_default=True, type=int, help="streamable-http: the port")
@pass_script_info
def mcp(info: ScriptInfo, transport: str, host: str, port: int) -> None:
    """Serve Tally's API as MCP tools for AI agents, acting with TALLY_API_KEY (or the key in
    TALLY_API_KEY_FILE, which the server rewrites when it rotates its own key)."""
    app = info.load_app()
    key_file = app.config["MCP_API_KEY_FILE"]
    api_key = (Path(key_file).read_text().strip() if key_file and Path(key_file).exists()
               else "") or app.config["MCP_API_KEY"]
    if not api_key:
        raise click.ClickException("Set TALLY_API_KEY to the Tally API key the tools act with "
                                   "(or TALLY_API_KEY_FILE to a file holding it).")
    # Loaded only for this command: the MCP SDK is heavy, and no other command needs it.
    from interfaces import mcp_server

    mcp_server.run(app, api_key, key_file=key_file, transport=transport, host=host, port=port)


@click.command("grant-app-role")
@click.argument("role")
@with_appcontext
@uow.unit()
def grant_app_role(role: str) -> None:
    """PostgreSQL, as the tables' owner: let ROLE read and write every table but the
    audit log, which it may only read and insert into. Run after each migration."""
    try:
        given = roles.grant_app_role(db.session.connection(), role)  # one unit: the command
    except (LookupError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"role": role, "tables": len(given),
                           "audit_events": given.get("audit_events")}))


@click.command("create-staff")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--name", default="")
@with_appcontext
@uow.unit()
def create_staff(email: str, password: str, name: str) -> None:
    """Create a support-staff user; print one line of JSON with a staff key."""
    try:
        click.echo(json.dumps(accounts.create_staff(email=email, password=password, name=name)))
    except TallyError as exc:
        raise click.ClickException(exc.message) from exc


# Each is one unit of work (`uow.unit()`), but deliver-outbox (a loop of deliveries), mcp (a
# server of requests) and the nightly jobs (a unit per batch), which frame their own.
COMMANDS = (seed_demo, close_period, purge_idempotency_keys, purge_usage_events, grant_app_role,
            create_staff, deliver_outbox, mcp)


def init_app(app: Flask) -> None:
    for command in COMMANDS + staff_cli.COMMANDS:
        app.cli.add_command(command)
