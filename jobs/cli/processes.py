"""The platform's processes, one command each: ``migrate``, ``api``, ``worker``, ``beat``,
``flower`` and ``relay``. Each replaces the CLI process with the server, so signals reach it
directly, as in a container."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from jobs.broker.queues import LONG_QUEUES, QUEUES
from jobs.cli.support import Context, pass_context
from jobs.settings import Settings

CELERY = (sys.executable, "-m", "celery", "-A", "workers.app")


def _exec(argv: list[str]) -> NoReturn:
    os.execvp(argv[0], argv)


@click.command()
@pass_context
def migrate(ctx: Context) -> None:
    """Bring the database schema to head."""
    from jobs.migrate import upgrade

    upgrade(ctx.settings)
    click.echo("The database is at head.", err=True)


@click.command()
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, help="request threads per worker process")
@click.option("--port", type=int, help="default: CONVEYOR_API_PORT")
@pass_context
def api(ctx: Context, workers: int, threads: int, port: int | None) -> None:
    """Serve the HTTP API with gunicorn (threads overlap the waits on database commits)."""
    bind = f"{ctx.settings.api_host}:{port or ctx.settings.api_port}"
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread", "--threads", str(threads)]
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_folder(ctx.settings.data_dir / "metrics" / "api"))
    # Any request line: the API answers an over-long URL with its own JSON 414, not gunicorn's page.
    _exec([*argv, "-c", "python:api.gunicorn_conf", "--limit-request-line", "0", "-b", bind, "api.wsgi:app"])


def _fresh_folder(folder: Path) -> Path:
    """The metrics' files of this run only: counts of an earlier run would be added up too."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return folder


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--queues", default=",".join(QUEUES), show_default=True, help="comma-separated queues to serve")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(queues: str, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (extra arguments go to celery). A worker that serves only long-job
    queues reserves one message per process (prefetch 1), so none waits behind a long job; one
    that serves only ``ocr`` runs a process per core unless told (tesseract is CPU-bound)."""
    chosen = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(QUEUES))
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown queues {unknown}; choose from {', '.join(QUEUES)}", param_hint="--queues"
        )
    argv = [*CELERY, "worker", "-l", "INFO", "-Q", ",".join(chosen), "-O", "fair"]
    if set(chosen) <= set(LONG_QUEUES):
        argv += ["--prefetch-multiplier", "1"]
    given = {arg.split("=")[0] for arg in celery_args}
    if chosen == ["ocr"] and not {"-c", "--concurrency"} & given:
        argv += ["--concurrency", str(os.cpu_count() or 1)]
    if not {"-n", "--hostname"} & given:
        # Two workers on one host need two names: RabbitMQ lets one consumer hold a control queue.
        argv += ["-n", f"{'-'.join(chosen)}@%h"]
    _exec([*argv, *celery_args])


@click.command()
@pass_context
def beat(ctx: Context) -> None:
    """Fire the schedules in schedules/beat.py as jobs; run several, one leads."""
    from jobs.observability import start_process
    from jobs.scheduler.loop import serve

    start_process("beat", ctx.settings)
    serve(ctx)


@click.command()
@pass_context
def flower(ctx: Context) -> None:
    """Run Flower, bound to CONVEYOR_FLOWER_HOST, behind a login everywhere: without one, any web
    page open in a browser on the machine could drive it (apply tasks, shut workers down)."""
    settings = ctx.settings
    if not settings.flower_basic_auth:
        raise click.UsageError(
            "Flower always asks for a login: set CONVEYOR_FLOWER_BASIC_AUTH=user:password "
            "(`conveyor dev` makes one)."
        )
    # Through the environment, not the command line, which any user can read in `ps`.
    os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    argv = [*CELERY, "flower", f"--address={settings.flower_host}", f"--port={settings.flower_port}"]
    _exec([*argv, "--inspect_timeout=3000", *_flower_state(settings)])


FLOWER_SAVE_EVERY_MS = 60_000


def _flower_state(settings: Settings) -> list[str]:
    """Flower's task history in the data folder, saved every minute and at a stop, so a restart
    (even a crash) loses at most a minute of it."""
    folder = settings.data_dir / "flower"
    folder.mkdir(parents=True, exist_ok=True)
    return [
        "--persistent=True",
        f"--db={folder / 'state'}",
        f"--state_save_interval={FLOWER_SAVE_EVERY_MS}",
    ]


@click.command()
@pass_context
def relay(ctx: Context) -> None:
    """Move messages between database and broker: the outbox out, dead letters in."""
    from jobs.observability import start_process
    from jobs.relay.process import run

    run(start_process("relay", ctx.settings), ctx.sessions)


@click.command()
@click.option(
    "--check",
    "component",
    type=click.Choice(["beat", "relay"]),
    help="Only whether that process's loop turned here in the last minute (a container's healthcheck).",
)
@click.option("--json", "as_json", is_flag=True, help="the checks as JSON, for scripts")
@pass_context
def doctor(ctx: Context, component: str | None, as_json: bool) -> None:
    """Check the deployment: settings, credentials, database, broker, consumers, queues, outbox,
    dead letters, heartbeats, schedules and backups; each ok, warn, fail or skip, with the command
    to run next. Exits 1 when any check fails."""
    if component:
        sys.exit(_check_alive(ctx, component))
    from jobs.doctor.report import as_json as report_json
    from jobs.doctor.report import as_lines, failed
    from jobs.doctor.run import run_checks

    checks = run_checks(ctx.settings)
    click.echo(report_json(checks) if as_json else "\n".join(as_lines(checks, click.style)))
    sys.exit(1 if failed(checks) else 0)


def _check_alive(ctx: Context, component: str) -> int:
    from jobs.observability.liveness import STALE_AFTER_S, age_s

    age = age_s(ctx.settings, component)
    if age is None or age > STALE_AFTER_S:
        seen = "never" if age is None else f"{age:.0f} s ago"
        click.echo(
            f"fail: {component}'s loop last turned here {seen} (stale after {STALE_AFTER_S:.0f} s).", err=True
        )
        return 1
    click.echo(f"ok: {component}'s loop turned {age:.0f} s ago.")
    return 0


COMMANDS = (migrate, api, worker, beat, flower, relay, doctor)
