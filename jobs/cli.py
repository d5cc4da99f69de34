"""The ``conveyor`` command: run the platform's processes and operate on jobs."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from typing import Any, NoReturn

import click

from jobs import service, tokens
from jobs.cli_support import Context, parse_json, parse_uuid, pass_context, to_json
from jobs.dead_letters_cli import dead_letters_group
from jobs.dev import dev
from jobs.models import FINISHED_STATES, Job

QUEUE_LIST = "default,ocr,imports,maintenance"


@click.group()
def main() -> None:
    """Conveyor: submit jobs over HTTP, run them on Celery workers, recover every failure."""


def _exec(argv: list[str]) -> NoReturn:
    """Replace this process, so signals reach the server directly (as in a container)."""
    os.execvp(argv[0], argv)


@main.command()
@pass_context
def migrate(ctx: Context) -> None:
    """Bring the database schema to head."""
    from jobs.migrate import upgrade

    upgrade(ctx.settings)
    click.echo("The database is at head.", err=True)


@main.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, help="request threads per worker process")
@click.option("--port", type=int, help="default: CONVEYOR_API_PORT")
@pass_context
def api(ctx: Context, workers: int, threads: int, port: int | None) -> None:
    """Serve the HTTP API with gunicorn (threads overlap the waits on database commits)."""
    bind = f"{ctx.settings.api_host}:{port or ctx.settings.api_port}"
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread", "--threads", str(threads)]
    _exec([*argv, "-b", bind, "api.wsgi:app"])


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker on every queue (extra arguments go to celery)."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-l", "INFO"]
    _exec([*argv, "-Q", QUEUE_LIST, *celery_args])


@main.command()
@pass_context
def beat(ctx: Context) -> None:
    """Run Celery beat with the schedule in schedules/beat.py."""
    _exec([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "-l", "INFO"])


@main.command()
@pass_context
def flower(ctx: Context) -> None:
    """Run Flower, bound to CONVEYOR_FLOWER_HOST (its API needs no login only on loopback)."""
    settings = ctx.settings
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "flower"]
    argv += [f"--address={settings.flower_host}", f"--port={settings.flower_port}", "--inspect_timeout=3000"]
    if settings.flower_basic_auth:
        argv.append(f"--basic_auth={settings.flower_basic_auth}")
    elif settings.flower_host in ("127.0.0.1", "localhost", "::1"):
        os.environ["FLOWER_UNAUTHENTICATED_API"] = "true"
    else:
        raise click.UsageError(
            "Flower listens beyond loopback: set CONVEYOR_FLOWER_BASIC_AUTH=user:password."
        )
    _exec(argv)


@main.command()
@pass_context
def relay(ctx: Context) -> None:
    """Move messages between database and broker: the outbox out, dead letters in."""
    from jobs.indexer import run_indexer
    from jobs.observability import configure_logging
    from jobs.outbox import run_relay

    configure_logging(ctx.settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sessions = ctx.sessions
    indexer = threading.Thread(target=run_indexer, args=(ctx.settings, sessions, stop), name="indexer")
    indexer.start()
    run_relay(ctx.settings, sessions, stop)
    indexer.join()


@main.command()
@click.argument("job_type")
@click.option("--payload", default="{}", show_default=True, help="the payload as JSON")
@click.option("--queue", help="override the type's queue")
@click.option("--max-attempts", type=click.IntRange(1, 100))
@click.option("--wait", is_flag=True, help="wait for the job to finish; exit 1 unless it succeeds")
@click.option("--timeout", default=300.0, show_default=True, help="seconds to --wait")
@pass_context
def submit(
    ctx: Context,
    job_type: str,
    payload: str,
    queue: str | None,
    max_attempts: int | None,
    wait: bool,
    timeout: float,
) -> None:
    """Submit a job of JOB_TYPE; prints its id (with --wait, the finished job as JSON)."""
    data = parse_json(payload, "--payload")
    submission = service.Submission(type=job_type, payload=data, queue=queue, max_attempts=max_attempts)
    sessions = ctx.sessions
    try:
        with sessions.begin() as session:
            job = service.submit(session, ctx.settings, submission)
    except service.InvalidJobError as exc:
        raise click.UsageError(f"The job is not valid: {json.dumps(exc.errors)}") from None
    if not wait:
        click.echo(str(job.id))
        return
    finished = _wait_for(sessions, job.id, timeout)
    click.echo(to_json(finished.to_dict()))
    sys.exit(0 if finished.state == "succeeded" else 1)


def _wait_for(sessions: Any, job_id: uuid.UUID, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            job: Job = service.get(session, job_id)
        if job.state in FINISHED_STATES:
            return job
        if time.monotonic() > deadline:
            message = f"Job {job_id} is still {job.state} after {timeout:.0f} s"
            with sessions() as session:
                if service.is_unpublished(session, job_id):
                    message += "; it was never published: is `conveyor relay` running?"
            raise click.ClickException(message + ".")
        time.sleep(0.2)


@main.group()
def jobs() -> None:
    """Read jobs."""


@jobs.command("list")
@click.option("--type", "job_type")
@click.option("--state", type=click.Choice([s.value for s in service.JobState]))
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
    jid = parse_uuid(job_id, "job")
    try:
        with ctx.sessions() as session:
            click.echo(to_json(service.get(session, jid).to_dict()))
    except service.JobNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@main.group("tokens")
def tokens_group() -> None:
    """Manage API tokens."""


@tokens_group.command("create")
@click.option("--scopes", required=True, help=f"comma-separated: {', '.join(tokens.SCOPES)}")
@click.option("--name", default="cli", show_default=True)
@pass_context
def create_token(ctx: Context, scopes: str, name: str) -> None:
    """Create a token; prints only the token, so scripts can capture it."""
    try:
        granted = tokens.parse_scopes(scopes)
    except tokens.InvalidScopeError as exc:
        raise click.BadParameter(str(exc), param_hint="--scopes") from None
    with ctx.sessions.begin() as session:
        click.echo(tokens.create_token(session, name, granted))


main.add_command(dev)
main.add_command(dead_letters_group)

if __name__ == "__main__":
    main()
