"""The worker's side of job families (``jobs.service.families``): fanning out, finding the
children, and telling the parent when a child has finished or moved on."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobs import service
from jobs.catalogue import JOB_TYPES
from jobs.settings import Settings
from tasks.context import Child

log = logging.getLogger(__name__)


def children(sessions: sessionmaker[Session], job_id: uuid.UUID) -> list[Child]:
    with sessions() as session:
        return [
            Child(job.id, job.type, job.state, job.payload, job.result, job.error_message)
            for job in service.children_of(session, job_id)
        ]


def fan_out(
    session: Session,
    settings: Settings,
    job_id: uuid.UUID,
    token: str,
    wanted: list[tuple[str, dict[str, Any]]],
) -> None:
    """The job waits for its children, submitted in the same transaction."""
    submissions = [
        service.Submission(type=kind, payload=payload, queue=JOB_TYPES[kind].queue)
        for kind, payload in wanted
    ]
    job = service.get(session, job_id, for_update=True)
    if service.wait_for_children(session, settings, job, token, submissions):
        log.info("Job %s fanned out into %d child jobs.", job_id, len(submissions))


def release_parent(sessions: sessionmaker[Session], parent_id: uuid.UUID | None) -> None:
    """After a child's outcome is recorded; a failure here is left to the relay's sweep."""
    _on_parent(sessions, parent_id, service.release, "release")


def report_to_parent(sessions: sessionmaker[Session], parent_id: uuid.UUID | None) -> None:
    """After a child's progress: the parent's."""
    _on_parent(sessions, parent_id, service.update_parent_progress, "update the progress of")


def _on_parent(
    sessions: sessionmaker[Session],
    parent_id: uuid.UUID | None,
    change: Callable[[Session, uuid.UUID], Any],
    what: str,
) -> None:
    """In a transaction of its own: a child's row is never held while its parent's is waited for
    (a cancel locks the parent first)."""
    if parent_id is None:
        return
    try:
        with sessions.begin() as session:
            change(session, parent_id)
    except Exception as exc:
        log.warning(
            "Could not %s the parent job %s (%s); a later child or the relay's sweep tries again.",
            what,
            parent_id,
            exc,
        )
