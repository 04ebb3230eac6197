"""Staff CLI commands: `reconcile`, `credit-grants`, `staff-permission`."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from flask.cli import with_appcontext

from interfaces import jobs
from models.base import utcnow
from services import uow
from services.errors import TallyError
from services.staff import console as staff
from services.staff.audit import Actor


@click.command("reconcile")
@click.option("--apply", "apply_", is_flag=True,
              help="Credit what is found (exactly once, like the webhook would).")
@click.option("--days", default=30, show_default=True,
              help="Look at top-ups created in the last N days (0: all).")
@with_appcontext
def reconcile(apply_: bool, days: int) -> None:
    """List top-ups that succeeded at Stripe but were never credited; --apply credits them.

    Prints one line of JSON: {checked, applied, uncredited: [...], credited, missing_at_stripe}.
    One unit of work per top-up (jobs.reconcile).
    """
    since = utcnow() - timedelta(days=days) if days > 0 else None
    try:
        report = jobs.reconcile(apply=apply_, since=since)
    except TallyError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(report.as_dict()))


@click.command("credit-grants")
@with_appcontext
def credit_grants() -> None:
    """Post credit grants that became effective and expire those past expires_at.

    Run it from cron (every few minutes). Prints {"posted", "expired"}. A batch of grants
    per transaction (jobs.credit_grants): resumable, and two runs at once share the work.
    """
    click.echo(json.dumps(jobs.credit_grants()))


@click.command("staff-permission")
@click.option("--email", required=True)
@click.option("--grant", "grant_", default=None, help="A permission to give, e.g. impersonate_write.")
@click.option("--revoke", default=None, help="A permission to take away.")
@with_appcontext
@uow.unit()
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


COMMANDS = (reconcile, credit_grants, staff_permission)
