"""Staff CLI commands: `reconcile`, `credit-grants`, `staff-permission`."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from flask import Flask

from models.base import utcnow
from services.errors import TallyError
from services.ledger import grants, reconcile
from services.staff import console as staff
from services.staff.audit import Actor


def init_app(app: Flask) -> None:
    @app.cli.command("reconcile")
    @click.option("--apply", "apply_", is_flag=True,
                  help="Credit what is found (exactly once, like the webhook would).")
    @click.option("--days", default=30, show_default=True,
                  help="Look at top-ups created in the last N days (0: all).")
    def reconcile_command(apply_: bool, days: int) -> None:
        """List top-ups that succeeded at Stripe but were never credited; --apply credits them.

        Prints one line of JSON: {checked, applied, uncredited: [...], credited, missing_at_stripe}.
        """
        since = utcnow() - timedelta(days=days) if days > 0 else None
        try:
            report = reconcile.run(apply=apply_, since=since)
        except TallyError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(json.dumps(report.as_dict()))

    @app.cli.command("credit-grants")
    def credit_grants_command() -> None:
        """Post credit grants that became effective and expire those past expires_at.

        Run it from cron (every few minutes). Prints {"posted", "expired"}.
        """
        posted = grants.post_due()
        expired = grants.expire_due()
        click.echo(json.dumps({"posted": posted, "expired": expired}))

    @app.cli.command("staff-permission")
    @click.option("--email", required=True)
    @click.option("--grant", "grant_", default=None, help="A permission to give, e.g. impersonate_write.")
    @click.option("--revoke", default=None, help="A permission to take away.")
    def staff_permission(email: str, grant_: str | None, revoke: str | None) -> None:
        """Give or take a staff permission; prints {"email", "permissions"}."""
        if (grant_ is None) == (revoke is None):
            raise click.UsageError("Use exactly one of --grant or --revoke.")
        try:
            user = staff.set_permission(Actor.cli(), email, grant_ or revoke or "",
                                        granted=grant_ is not None)
        except TallyError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(json.dumps({"email": user.email, "permissions": user.permissions}))
