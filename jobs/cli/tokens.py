"""``conveyor tokens``: API tokens for services and operators."""

from __future__ import annotations

import click

from jobs import tokens as token_store
from jobs.cli.support import Context, pass_context


@click.group("tokens")
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.option("--scopes", required=True, help=f"comma-separated: {', '.join(token_store.SCOPES)}")
@click.option("--name", default="cli", show_default=True)
@pass_context
def create_token(ctx: Context, scopes: str, name: str) -> None:
    """Create a token; prints only the token, so scripts can capture it."""
    granted = token_store.parse_scopes(scopes)
    with ctx.sessions.begin() as session:
        click.echo(token_store.create_token(session, name, granted))
