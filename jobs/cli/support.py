"""What every ``conveyor`` command shares: settings, sessions and parsing."""

from __future__ import annotations

import json
import os
import pwd
import uuid
from typing import Any

import click

from jobs.db import Database
from jobs.errors import SettingsError
from jobs.settings import load_settings


class Context(Database):
    """Settings read once per command (a bad value is a usage error), and sessions on demand."""

    def __init__(self) -> None:
        try:
            super().__init__(load_settings())
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None


pass_context = click.make_pass_decorator(Context, ensure=True)


def table(rows: list[tuple[str, ...]]) -> None:
    """Print rows as aligned columns; the first row is the heading."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def parse_json(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from None


def parse_uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a {what} id: {what} ids are UUIDs") from None


def actor() -> str:
    """Who the audit log names for a command run at this shell: the OS account the process runs
    as, which (unlike ``$USER``) the person at the shell cannot simply claim to be another."""
    uid = os.geteuid()
    try:
        return f"cli:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"cli:uid-{uid}"
