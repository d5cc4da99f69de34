"""The recovery sweeper: jobs whose message may be gone are sent again.

A running job whose worker vanished (its lease ran out) and a waiting job no worker claimed for
``CONVEYOR_REPUBLISH_AFTER_S`` (a broker that lost its message) each get a new dispatch; a job lost
too often is dead-lettered instead. A parent job still waiting for children that have all
finished (one cancelled by hand, or dead-lettered here) is queued to join them. On the embedded broker the sweep also drops event and reply
queues nobody consumes any more.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from jobs import dead_letters, messages, service
from jobs.broker.config import transport_options
from jobs.broker.filesystem import prune_abandoned_queues, restore_unacked
from jobs.catalogue import JOB_TYPES
from jobs.models import Job, JobState
from jobs.settings import Settings

log = logging.getLogger(__name__)

# A third of the lease: a job whose worker died is sent again within about two leases (see lapse_grace).
SWEEPS_PER_LEASE = 3


class Sweeper:
    """Sweeps every third of a lease, from the relay's publishing loop."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]):
        self.settings = settings
        self.sessions = sessions
        self.interval_s = settings.lease_s / SWEEPS_PER_LEASE
        self.next_sweep = 0.0

    def sweep_when_due(self) -> None:
        """A failed sweep waits for the next one: it must never hold up publishing."""
        if time.monotonic() < self.next_sweep:
            return
        self.next_sweep = time.monotonic() + self.interval_s
        try:
            sweep(self.settings, self.sessions)
        except Exception as exc:
            log.warning("The recovery sweep failed (%s); the next one is in %.0f s.", exc, self.interval_s)


def sweep(settings: Settings, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        grace = service.lapse_grace(timedelta(seconds=settings.lease_s))
        recovered = recover_lost_jobs(session, settings.delivery_limit, grace)
        unclaimed = service.unclaimed_jobs(session, timedelta(seconds=settings.republish_after_s))
        for job in unclaimed:
            service.send_again(session, job)
    with sessions.begin() as session:  # apart: it locks parents, which a cancel locks first
        released = service.release_finished_families(session)
    if settings.is_embedded_broker:
        _sweep_folders(settings)
    if recovered:
        log.warning("Recovered %d running jobs whose worker was lost.", recovered)
    if unclaimed:
        log.warning("Sent %d waiting jobs again: no worker claimed them in time.", len(unclaimed))
    if released:
        log.warning("Queued %d parent jobs whose children had all finished.", released)


def _sweep_folders(settings: Settings) -> None:
    """The embedded broker's upkeep: messages a dead worker held go back, and event and reply
    queues nobody consumes any more go away."""
    folders = {name: Path(folder) for name, folder in transport_options(settings).items() if "folder" in name}
    restored = restore_unacked(
        folders["unacked_folder"], folders["data_folder_in"], settings.visibility_timeout_s
    )
    if restored:
        log.warning("Put back %d messages a worker took and never acknowledged.", restored)
    pruned = prune_abandoned_queues(folders["data_folder_in"], folders["control_folder"])
    if pruned:
        log.info("Removed %d event or reply queues whose consumer went away.", pruned)


def recover_lost_jobs(session: Session, delivery_limit: int, grace: timedelta) -> int:
    """Resend jobs whose worker vanished (their lease ran out); dead-letter those lost too often."""
    lost = service.lost_jobs(session, grace)
    for job in lost:
        try:
            with session.begin_nested():
                _recover(session, job, delivery_limit)
        except Exception:
            log.error("Could not recover lost job %s; the next sweep tries again.", job.id, exc_info=True)
    return len(lost)


def _recover(session: Session, job: Job, delivery_limit: int) -> None:
    if service.recover_lost(session, job, delivery_limit) == JobState.DEAD:
        error = job.error_message or ""
        failure = failure_of_job(job, "worker_lost", job.error_type or "WorkerLostError", error)
        dead_letters.index(session, failure)


def failure_of_job(job: Job, reason: str, error_type: str, error: str) -> dead_letters.Failure:
    """The dead letter of a job that no worker dead-lettered (it died, or the message was never
    sent): the job's message as the relay sends it."""
    job_type = JOB_TYPES.get(job.type)
    task_name = job_type.task_name if job_type else None
    message_id = messages.task_id(job.id, job.dispatch)
    message = messages.capture(
        messages.task_body(job.id, job.dispatch),
        {"task": task_name, "id": message_id},
        {},
        {"routing_key": job.queue},
        "application/json",
        "utf-8",
        job.queue,
    )
    return dead_letters.Failure(
        message_id=message_id,
        queue=job.queue,
        reason=reason,
        error_type=error_type,
        error=error,
        message=message,
        job_id=job.id,
        type=job.type,
        task_name=task_name,
        attempts=job.attempts,
        worker=job.worker,
        first_failed_at=job.first_failed_at,
    )
