"""``conveyor tokens``: API tokens for services and operators."""

from __future__ import annotations

from typing import Any

import click

from jobs import tokens as token_store
from jobs.cli.support import Context, parse_uuid, pass_context, to_json
from jobs.models import utcnow


@click.group("tokens")
def tokens() -> None:
    """Manage API tokens."""


@tokens.command("create")
@click.option("--scopes", required=True, help=f"comma-separated: {', '.join(token_store.SCOPES)}")
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-in", help="e.g. 90m, 12h, 30d (default: never)")
@pass_context
def create_token(ctx: Context, scopes: str, name: str, expires_in: str | None) -> None:
    """Create a token; prints only the token, so scripts can capture it."""
    granted = token_store.parse_scopes(scopes)
    lifetime = token_store.parse_duration(expires_in) if expires_in else None
    with ctx.sessions.begin() as session:
        click.echo(token_store.create_token(session, name, granted, lifetime))


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_tokens(ctx: Context, as_json: bool) -> None:
    """List tokens (never their secrets), oldest first."""
    with ctx.sessions() as session:
        found = [token.to_dict() for token in token_store.list_tokens(session)]
    if as_json:
        click.echo(to_json(found))
        return
    click.echo(f"{'ID':36}  {'NAME':16} {'SCOPES':24} STATE")
    for token in found:
        scopes = ",".join(token["scopes"])[:24]
        click.echo(f"{token['id']!s:36}  {token['name'][:16]:16} {scopes:24} {_state(token)}")


def _state(token: dict[str, Any]) -> str:
    if token["revoked_at"]:
        return f"revoked {token['revoked_at']:%Y-%m-%d %H:%M}"
    if token["expires_at"]:
        word = "expired" if token["expires_at"] <= utcnow() else "expires"
        return f"{word} {token['expires_at']:%Y-%m-%d %H:%M}"
    return "active"


@tokens.command("revoke")
@click.argument("token_id")
@pass_context
def revoke_token(ctx: Context, token_id: str) -> None:
    """Revoke a token: every API process refuses it within 10 s."""
    with ctx.sessions.begin() as session:
        token_store.revoke(session, parse_uuid(token_id, "token"))
    click.echo(f"Revoked token {token_id}.", err=True)
