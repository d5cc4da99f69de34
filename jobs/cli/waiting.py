"""``--wait``: follow a submitted job until it finishes, with its progress as a bar on a terminal."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from sqlalchemy.orm import Session, sessionmaker

from jobs import service
from jobs.cli.support import to_json
from jobs.models import FINISHED_STATES, Job, JobState

POLL_S = 0.2


def finish(sessions: sessionmaker[Session], job: Job, wait: bool, timeout: float) -> None:
    """Print the job's id, or with ``wait`` the finished job as JSON and exit 1 unless it succeeded."""
    if not wait:
        click.echo(str(job.id))
        return
    finished = wait_for(sessions, job.id, timeout)
    click.echo(to_json(finished.to_dict()))
    sys.exit(0 if finished.state == JobState.SUCCEEDED else 1)


def wait_for(sessions: sessionmaker[Session], job_id: uuid.UUID, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    with _bar(f"Job {job_id}") as show:
        while True:
            with sessions() as session:
                job = service.get(session, job_id)
            show(job)
            if job.state in FINISHED_STATES:
                return job
            if time.monotonic() > deadline:
                raise click.ClickException(_still_waiting(sessions, job, timeout))
            time.sleep(POLL_S)


@contextmanager
def _bar(description: str) -> Iterator[Callable[[Job], None]]:
    """The job's percent and message on standard error when it is a terminal; else nothing."""
    if not sys.stderr.isatty():
        yield lambda _: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn

    columns = ("{task.description}", BarColumn(), TaskProgressColumn(), "{task.fields[message]}")
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=100, message="")
        yield lambda job: progress.update(
            task, completed=job.progress, message=job.progress_message or job.state
        )


def _still_waiting(sessions: sessionmaker[Session], job: Job, timeout: float) -> str:
    message = f"Job {job.id} is still {job.state} after {timeout:.0f} s"
    with sessions() as session:
        if service.is_unpublished(session, job.id):
            message += "; it was never published: is `conveyor relay` running?"
    return message + "."
