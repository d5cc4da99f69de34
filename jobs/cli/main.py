"""The ``conveyor`` command: run the platform's processes and operate on jobs."""

from __future__ import annotations

import json
from typing import Any

import click

from jobs.cli import backups, dead_letters, dev, files, import_profiles, jobs, processes, schedules, tokens
from jobs.errors import ConveyorError, InvalidInputError


class ConveyorGroup(click.Group):
    """The CLI's one translation of the core's errors, never a traceback: bad input is a usage
    error (exit 2), anything else a message and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInputError as exc:
            fields = f": {json.dumps(exc.errors)}" if exc.errors else ""
            raise click.UsageError(str(exc).rstrip(".") + fields) from None
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=ConveyorGroup)
def main() -> None:
    """Conveyor: submit jobs over HTTP, run them on Celery workers, recover every failure."""


for command in (
    *processes.COMMANDS,
    *jobs.COMMANDS,
    files.files_group,
    tokens.tokens,
    dev.dev,
    dead_letters.dead_letters_group,
    schedules.schedules_group,
    backups.backups_group,
    import_profiles.import_profiles_group,
):
    main.add_command(command)
