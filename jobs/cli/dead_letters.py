"""``conveyor dead-letters``: the same operations as ``/v1/dead-letters``, for operators at a shell."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from jobs import dead_letters
from jobs.cli.support import Context, actor, parse_json, parse_uuid, pass_context, table, to_json

COLUMNS = ("ID", "QUEUE", "TYPE", "REASON", "ERROR", "ATTEMPTS", "LAST FAILED")


def filter_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--queue"),
            click.option("--type", "job_type"),
            click.option("--error", help="an error type, or text in the error message"),
            click.option("--since", type=click.DateTime(), help="last failure at or after (UTC)"),
            click.option("--until", type=click.DateTime(), help="last failure before (UTC)"),
        ]
    ):
        command = option(command)
    return command


def _filter(queue: str | None, job_type: str | None, error: str | None, since: datetime | None,
            until: datetime | None, state: str = "dead") -> dead_letters.Filter:  # fmt: skip
    return dead_letters.Filter(
        queue=queue,
        type=job_type,
        error=error,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
        state=state,
    )


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Inspect, requeue and purge dead letters."""


@dead_letters_group.command("list")
@filter_options
@click.option("--state", type=click.Choice(["dead", "requeued", "purged"]), default="dead", show_default=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_command(ctx: Context, state: str, limit: int, as_json: bool, **filters: Any) -> None:
    """List dead letters, most recent failure first."""
    sessions = ctx.sessions
    with sessions() as session:
        found = dead_letters.list_dead_letters(session, _filter(**filters, state=state), limit)
        if as_json:
            click.echo(to_json(dead_letters.views(session, found)))
            return
    rows = [
        (str(d.id), d.queue, d.type or "-", d.reason, f"{d.error_type}: {d.error}"[:48], str(d.attempts),
         f"{d.last_failed_at:%Y-%m-%d %H:%M:%S}")
        for d in found
    ]  # fmt: skip
    table([COLUMNS, *rows])


@dead_letters_group.command("show")
@click.argument("dead_letter_id")
@pass_context
def show_command(ctx: Context, dead_letter_id: str) -> None:
    """Show one dead letter as JSON, with its original message and audit trail."""
    sessions = ctx.sessions
    with sessions() as session:
        letter = dead_letters.get(session, parse_uuid(dead_letter_id, "dead letter"))
        click.echo(to_json(dead_letters.view(session, letter)))


@dead_letters_group.command("stats")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def stats_command(ctx: Context, as_json: bool) -> None:
    """Count dead letters waiting for an operator, by queue, type, error and reason."""
    sessions = ctx.sessions
    with sessions() as session:
        counts = dead_letters.stats(session)
    if as_json:
        click.echo(to_json(counts))
        return
    for name, by_key in counts.items():
        click.echo(f"by {name}:")
        for key, total in sorted(by_key.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {total:>6}  {key}")


@dead_letters_group.command("requeue")
@click.argument("ids", nargs=-1)
@filter_options
@click.option("--payload", help="a corrected payload (JSON), for one job's dead letter")
@click.option("--reason", help="why, for the audit log")
@click.option("--dry-run", is_flag=True, help="only count what a filter matches")
@click.option("--yes", is_flag=True, help="requeue everything the filter matches without asking")
@pass_context
def requeue_command(
    ctx: Context,
    ids: tuple[str, ...],
    payload: str | None,
    reason: str | None,
    dry_run: bool,
    yes: bool,
    **filters: Any,
) -> None:
    """Requeue dead letters by id, or every one a filter matches."""
    corrected = _payload(payload, ids)
    letter_ids = [parse_uuid(text, "dead letter") for text in ids]
    flt = _filter(**filters)
    if not ids and not _confirm_matches(ctx, flt, dry_run, yes):
        return
    skipped: list[dict[str, str]] = []
    with ctx.sessions.begin() as session:
        for letter_id in letter_ids:
            dead_letters.requeue(
                session, letter_id, actor=actor(), reason=reason, payload=corrected, settings=ctx.settings
            )
        if not ids:
            letter_ids, skipped = dead_letters.requeue_matching(session, flt, actor=actor(), reason=reason)
    click.echo(f"Requeued {len(letter_ids)}; skipped {len(skipped)}.", err=True)
    for item in skipped:
        click.echo(f"  skipped {item['id']}: {item['why']}", err=True)


def _confirm_matches(ctx: Context, flt: dead_letters.Filter, dry_run: bool, yes: bool) -> bool:
    """Say how many dead letters the filter matches; whether to go on and requeue them."""
    with ctx.sessions() as session:
        matched = dead_letters.count(session, flt)
    click.echo(f"{matched} dead letters match.", err=True)
    if dry_run or matched == 0:
        return False
    _confirm(yes, f"Requeue all {matched}?")
    return True


def _payload(text: str | None, ids: tuple[str, ...]) -> dict[str, Any] | None:
    if text is None:
        return None
    if len(ids) != 1:
        raise click.UsageError("--payload corrects one dead letter: name exactly one id.")
    value = parse_json(text, "--payload")
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--payload")
    return value


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError("This changes many dead letters: pass --yes (or --dry-run to count them).")
    click.confirm(question, abort=True)


@dead_letters_group.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--expired", is_flag=True, help="purge those older than CONVEYOR_DEAD_LETTER_RETENTION_DAYS")
@click.option("--reason", help="why, for the audit log")
@click.option("--yes", is_flag=True, help="purge without asking")
@pass_context
def purge_command(ctx: Context, ids: tuple[str, ...], expired: bool, reason: str | None, yes: bool) -> None:
    """Purge dead letters by id, or (--expired) every one past the retention period."""
    sessions = ctx.sessions
    if bool(ids) == expired:
        raise click.UsageError("Name dead letter ids, or pass --expired (not both).")
    _confirm(yes, f"Purge {len(ids) or 'expired'} dead letters?")
    with sessions.begin() as session:
        if expired:
            retention = timedelta(days=ctx.settings.dead_letter_retention_days)
            count = dead_letters.purge_expired(session, retention, actor=actor())
        else:
            for text in ids:
                dead_letters.purge(session, parse_uuid(text, "dead letter"), actor=actor(), reason=reason)
            count = len(ids)
    click.echo(f"Purged {count}.", err=True)
