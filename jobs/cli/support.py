"""What every ``conveyor`` command shares: settings, sessions and parsing."""

from __future__ import annotations

import json
import os
import pwd
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

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


@contextmanager
def opened(path: str) -> Iterator[tuple[BinaryIO, int | None]]:
    if path == "-":
        yield sys.stdin.buffer, None
        return
    with open(path, "rb") as file:
        yield file, os.fstat(file.fileno()).st_size


@contextmanager
def byte_bar(total: int | None, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on standard error when it is a terminal; otherwise nothing is drawn."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)
