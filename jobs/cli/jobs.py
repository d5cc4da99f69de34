"""``conveyor submit`` and ``conveyor jobs``: the job operations of ``/v1/jobs``, at a shell."""

from __future__ import annotations

import click

from jobs import dead_letters, service
from jobs.catalogue import JOB_TYPES, describe, installed_now
from jobs.cli.support import Context, actor, parse_json, parse_uuid, pass_context, to_json
from jobs.cli.waiting import finish
from jobs.models import JobState


@click.command()
@click.argument("job_type", required=False)
@click.option(
    "--from-file",
    "path",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="a JSON Lines file of jobs (`-`: standard input); see below",
)
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="--from-file: jobs a transaction",
)
@click.option(
    "--from-line", default=1, show_default=True, type=click.IntRange(1), help="--from-file: first line read"
)
@click.option("--skip-invalid", is_flag=True, help="--from-file: report and skip lines that are not jobs")
@click.option(
    "--as", "as_token", metavar="TOKEN_NAME", help="--from-file: whose idempotency keys the lines' are"
)
@click.option("--payload", default="{}", show_default=True, help="the payload as JSON")
@click.option("--queue", help="override the type's queue")
@click.option("--max-attempts", type=click.IntRange(1, 100))
@click.option("--wait", is_flag=True, help="wait for the job to finish; exit 1 unless it succeeds")
@click.option("--timeout", default=300.0, show_default=True, help="seconds to --wait")
@pass_context
def submit(
    ctx: Context,
    job_type: str | None,
    path: str | None,
    batch_size: int,
    from_line: int,
    skip_invalid: bool,
    as_token: str | None,
    payload: str,
    queue: str | None,
    max_attempts: int | None,
    wait: bool,
    timeout: float,
) -> None:
    """Submit a job of JOB_TYPE; prints its id (with --wait, the finished job as JSON).

    With --from-file, each line is a job as POST /v1/jobs takes it (with an optional
    idempotency_key): submitted in batches, each all or nothing, with a progress bar."""
    if (job_type is None) == (path is None):
        raise click.UsageError("Give either a JOB_TYPE or --from-file.")
    if path is not None:
        from jobs.cli.submit_file import submit_file

        submit_file(ctx, path, batch_size, from_line, skip_invalid, as_token)
        return
    assert job_type is not None
    data = parse_json(payload, "--payload")
    submission = service.Submission(type=job_type, payload=data, queue=queue, max_attempts=max_attempts)
    with ctx.sessions.begin() as session:
        job = service.submit(session, ctx.settings, submission)
    finish(ctx.sessions, job, wait, timeout)


@click.group()
def jobs() -> None:
    """Read jobs."""


@jobs.command("list")
@click.option("--type", "job_type")
@click.option("--state", type=click.Choice([s.value for s in JobState]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_jobs(ctx: Context, job_type: str | None, state: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    with ctx.sessions() as session:
        found = service.list_jobs(session, limit, type=job_type, state=state)
    if as_json:
        click.echo(to_json([job.to_dict() for job in found]))
        return
    click.echo(f"{'ID':36}  {'TYPE':10} {'STATE':10} {'ATTEMPTS':>8}  CREATED")
    for job in found:
        attempts = f"{job.attempts}/{job.max_attempts}"
        created = f"{job.created_at:%Y-%m-%d %H:%M:%S}"
        click.echo(f"{job.id!s:36}  {job.type:10} {job.state:10} {attempts:>8}  {created}")


@jobs.command("show")
@click.argument("job_id")
@pass_context
def show_job(ctx: Context, job_id: str) -> None:
    """Show one job as JSON."""
    with ctx.sessions() as session:
        click.echo(to_json(service.get(session, parse_uuid(job_id, "job")).to_dict()))


@jobs.command("cancel")
@click.argument("job_id")
@pass_context
def cancel_job(ctx: Context, job_id: str) -> None:
    """Cancel a waiting job now, or ask a running one to stop; prints the job as JSON."""
    with ctx.sessions.begin() as session:
        cancelled = service.cancel(session, parse_uuid(job_id, "job"), actor=actor())
        click.echo(to_json(cancelled.to_dict()))


@jobs.command("retry")
@click.argument("job_id")
@pass_context
def retry_job(ctx: Context, job_id: str) -> None:
    """Run a dead or cancelled job again from its first attempt; prints the job as JSON."""
    with ctx.sessions.begin() as session:
        job = dead_letters.retry_job(session, parse_uuid(job_id, "job"), actor=actor())
        click.echo(to_json(job.to_dict()))


@click.command("job-types")
@click.option("--json", "as_json", is_flag=True, help="with each type's payload JSON schema")
def job_types(as_json: bool) -> None:
    """List the job types this release accepts."""
    if as_json:
        click.echo(to_json([{**describe(jt), **installed_now(jt)} for jt in JOB_TYPES.values()]))
        return
    for jt in JOB_TYPES.values():
        click.echo(f"{jt.name:10} {jt.queue:12} {jt.description}")


COMMANDS = (submit, jobs, job_types)
