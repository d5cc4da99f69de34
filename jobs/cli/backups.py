"""``conveyor backups``: the same operations as ``/v1/backups`` and ``/v1/restore-drills``."""

from __future__ import annotations

import sys
from typing import Any

import click

from jobs.catalogue.maintenance import PLATFORM
from jobs.cli.support import Context, actor, parse_uuid, pass_context, table, to_json
from jobs.cli.waiting import finish
from jobs.models import Backup, Job, RestoreDrill
from jobs.storage.base import size_text
from jobs.upkeep import manifest, operations

BACKUP_COLUMNS = ("ID", "TARGET", "STARTED", "SIZE", "VERIFIED", "TABLES", "URL")
DRILL_COLUMNS = ("ID", "TARGET", "STARTED", "OK", "RTO", "BACKUP AGE", "ERROR")


def waiting(command: Any) -> Any:
    command = click.option("--timeout", default=3600.0, show_default=True, help="seconds to --wait")(command)
    return click.option("--wait", is_flag=True, help="wait for the job; exit 1 unless it succeeds")(command)


@click.group("backups")
def backups_group() -> None:
    """List, create, verify and restore backups; run a restore drill."""


@backups_group.command("list")
@click.option("--target")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_command(ctx: Context, target: str | None, limit: int, as_json: bool) -> None:
    """The manifest, newest first; only verified backups count."""
    with ctx.sessions() as session:
        found = manifest.list_backups(session, limit, target=target)
    if as_json:
        click.echo(to_json([manifest.backup_view(b) for b in found]))
        return
    table([BACKUP_COLUMNS, *(_backup_row(b) for b in found)])


def _backup_row(backup: Backup) -> tuple[str, ...]:
    verified = "yes" if backup.verified else f"NO: {backup.verify_error or 'not checked'}"[:40]
    started = f"{backup.started_at:%Y-%m-%d %H:%M:%S}"
    return (
        str(backup.id),
        backup.target,
        started,
        size_text(backup.size),
        verified,
        str(len(backup.tables)),
        backup.url,
    )


@backups_group.command("create")
@click.option("--target", default=PLATFORM, show_default=True)
@waiting
@pass_context
def create_command(ctx: Context, target: str, wait: bool, timeout: float) -> None:
    """Back up TARGET now; prints the job's id (with --wait, the finished job)."""
    with ctx.sessions.begin() as session:
        job = operations.back_up(session, ctx.settings, target, actor())
    finish(ctx.sessions, job, wait, timeout)


@backups_group.command("verify")
@click.argument("backup_id")
@waiting
@pass_context
def verify_command(ctx: Context, backup_id: str, wait: bool, timeout: float) -> None:
    """Read BACKUP_ID back again: its sha256, and pg_restore --list."""
    with ctx.sessions.begin() as session:
        job = operations.verify(session, ctx.settings, parse_uuid(backup_id, "backup"), actor())
    finish(ctx.sessions, job, wait, timeout)


@backups_group.command("restore")
@click.argument("backup_id")
@click.option("--into", required=True, help="postgresql://host/database to restore into: empty, no password")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@waiting
@pass_context
def restore_command(ctx: Context, backup_id: str, into: str, yes: bool, wait: bool, timeout: float) -> None:
    """Restore BACKUP_ID into the database at --into, which must exist and should be empty
    (pg_restore stops at the first object that is already there)."""
    backup = parse_uuid(backup_id, "backup")
    if not yes:
        _confirm(f"Restore backup {backup} into {into}?")
    with ctx.sessions.begin() as session:
        job = operations.restore(session, ctx.settings, backup, into, actor())
    finish(ctx.sessions, job, wait, timeout)


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise click.UsageError("A restore asks for confirmation at a terminal; elsewhere pass --yes.")
    click.confirm(question, abort=True)


@backups_group.command("drill")
@click.option("--target", default=PLATFORM, show_default=True)
@waiting
@pass_context
def drill_command(ctx: Context, target: str, wait: bool, timeout: float) -> None:
    """Restore the newest verified backup of TARGET into a scratch database and check it."""
    with ctx.sessions.begin() as session:
        job: Job = operations.drill(session, ctx.settings, target, actor())
    finish(ctx.sessions, job, wait, timeout)


@backups_group.command("drills")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def drills_command(ctx: Context, limit: int, as_json: bool) -> None:
    """Every restore drill, newest first, with its measured RTO."""
    with ctx.sessions() as session:
        found = manifest.list_drills(session, limit)
    if as_json:
        click.echo(to_json([manifest.drill_view(d) for d in found]))
        return
    table([DRILL_COLUMNS, *(_drill_row(d) for d in found)])


def _drill_row(drill: RestoreDrill) -> tuple[str, ...]:
    started = f"{drill.started_at:%Y-%m-%d %H:%M:%S}"
    age = f"{drill.backup_age_s / 3600:.1f} h"
    ok = "yes" if drill.ok else "NO"
    return (str(drill.id), drill.target, started, ok, f"{drill.rto_s:.1f} s", age, (drill.error or "")[:60])
