"""``conveyor schedules``: the same operations as ``/v1/schedules``, for operators at a shell."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from jobs.cli.support import Context, actor, pass_context, table, to_json
from jobs.scheduler import operations

COLUMNS = ("NAME", "CRON", "STATE", "NEXT RUN", "LAST RUN", "OUTCOME", "LAST SUCCESS")


@click.group("schedules")
def schedules_group() -> None:
    """List what beat runs; run a schedule now; pause and resume one."""


@schedules_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_command(ctx: Context, as_json: bool) -> None:
    """Every schedule, with its next run, last outcome and whether it is late."""
    with ctx.sessions.begin() as session:
        found = operations.overview(session, ctx.settings)
    if as_json:
        click.echo(to_json(found))
        return
    table([COLUMNS, *(_row(s) for s in found)])


def _row(schedule: dict[str, Any]) -> tuple[str, ...]:
    last = schedule["last_run"]
    return (
        schedule["name"],
        schedule["cron"],
        _state(schedule),
        _at(schedule["next_run"]),
        _at(last["fired_at"] if last else None),
        schedule["last_outcome"] or "-",
        _at(schedule["last_success"]),
    )


def _state(schedule: dict[str, Any]) -> str:
    if schedule["off"]:
        return "off"
    if schedule["paused"]:
        return "paused"
    return "LATE" if schedule["late"] else "ok"


def _at(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "-"


@schedules_group.command("run")
@click.argument("name")
@pass_context
def run_command(ctx: Context, name: str) -> None:
    """Fire NAME now; prints its run as JSON."""
    with ctx.sessions.begin() as session:
        run = operations.run(session, ctx.settings, name, actor())
    click.echo(to_json(run))
    click.echo(f"Schedule {name} fired job {run['job_id']}.", err=True)


@schedules_group.command("pause")
@click.argument("name")
@pass_context
def pause_command(ctx: Context, name: str) -> None:
    """Stop NAME firing until it is resumed."""
    _pause(ctx, name, paused=True)


@schedules_group.command("resume")
@click.argument("name")
@pass_context
def resume_command(ctx: Context, name: str) -> None:
    """Let NAME fire again from its next slot."""
    _pause(ctx, name, paused=False)


def _pause(ctx: Context, name: str, *, paused: bool) -> None:
    with ctx.sessions.begin() as session:
        operations.pause(session, ctx.settings, name, actor(), paused=paused)
    click.echo(f"Schedule {name} is {'paused' if paused else 'resumed'}.", err=True)
