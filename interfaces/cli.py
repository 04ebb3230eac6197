"""CLI commands (`flask --app app seed-demo`, ...), each one unit of work."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import click
from flask import Flask

from interfaces import jobs, staff_cli
from services import idempotency, uow
from services.errors import TallyError
from services.identity import accounts
from services.usage import period_close

# Commands that frame their own units of work (a loop, a server of requests).
_OWN_UNITS = ("deliver-outbox", "mcp")


def _as_unit(callback: Callable[..., Any]) -> Callable[..., Any]:
    """A command is one unit of work: it commits when it ends, or rolls back if it fails."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        with uow.unit():
            return callback(*args, **kwargs)

    return run


def init_app(app: Flask) -> None:
    before = set(app.cli.commands)
    _register(app)
    for name in set(app.cli.commands) - before - set(_OWN_UNITS):
        command = app.cli.commands[name]
        command.callback = _as_unit(command.callback)  # type: ignore[arg-type]


def _register(app: Flask) -> None:
    staff_cli.init_app(app)  # reconcile, credit-grants, staff-permission

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Create (or find) the demo customer; print one line of JSON with a fresh key."""
        click.echo(json.dumps(accounts.seed_demo()))

    @app.cli.command("close-period")
    def close_period() -> None:
        """Post closed days of rated usage, issue last month's usage statements, end expired
        grace periods. Idempotent: run it daily from cron; a second run issues nothing."""
        result = period_close.close()
        click.echo(json.dumps({"days_posted": result.days_posted,
                               "statements_issued": result.statements,
                               "downgraded_to_free": result.downgraded}))

    @app.cli.command("purge-idempotency-keys")
    def purge_idempotency_keys() -> None:
        """Delete stored Idempotency-Key answers older than 24 hours; run it daily from cron."""
        click.echo(json.dumps({"deleted": idempotency.purge()}))

    @app.cli.command("deliver-outbox")
    @click.option("--loop", is_flag=True, help="Keep delivering, every --every seconds, until stopped.")
    @click.option("--every", default=10.0, show_default=True, type=float)
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

    @app.cli.command("mcp", with_appcontext=False)
    @click.option("--transport", type=click.Choice(["stdio", "streamable-http"]), default="stdio",
                  show_default=True)
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="streamable-http: the address to listen on (anyone who reaches it acts with the key)")
    @click.option("--port", default=8765, show_default=True, type=int, help="streamable-http: the port")
    def mcp(transport: str, host: str, port: int) -> None:
        """Serve Tally's API as MCP tools for AI agents, acting with TALLY_API_KEY."""
        api_key = app.config["MCP_API_KEY"]
        if not api_key:
            raise click.ClickException("Set TALLY_API_KEY to the Tally API key the tools act with.")
        from interfaces import mcp_server  # the mcp package loads only for this command

        mcp_server.run(app, api_key, transport=transport, host=host, port=port)

    @app.cli.command("create-staff")
    @click.option("--email", required=True)
    @click.option("--password", required=True)
    @click.option("--name", default="")
    def create_staff(email: str, password: str, name: str) -> None:
        """Create a support-staff user; print one line of JSON with a staff key."""
        try:
            click.echo(json.dumps(accounts.create_staff(email=email, password=password,
                                                        name=name)))
        except TallyError as exc:
            raise click.ClickException(exc.message) from exc
