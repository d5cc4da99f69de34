"""What every ``conveyor`` command shares: settings, sessions and parsing."""

from __future__ import annotations

import json
import uuid
from functools import cached_property
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from jobs.db import make_engine, make_sessionmaker
from jobs.settings import Settings, SettingsError, load_settings


class Context:
    """Settings read once per command (a bad value is a usage error), and sessions on demand."""

    def __init__(self) -> None:
        try:
            self.settings: Settings = load_settings()
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(make_engine(self.settings))


pass_context = click.make_pass_decorator(Context, ensure=True)


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
