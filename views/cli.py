"""CLI commands: `flask --app app seed-demo`, `flask --app app create-staff`."""

from __future__ import annotations

import json

import click
from flask import Flask

from services import accounts
from services.errors import TallyError


def init_app(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Create (or find) the demo customer; print one line of JSON with a fresh key."""
        click.echo(json.dumps(accounts.seed_demo()))

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
