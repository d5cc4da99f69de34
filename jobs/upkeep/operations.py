"""What operators ask of backups, from the API and the CLI alike: each is a job, and audited."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from jobs import service
from jobs.audit import audit
from jobs.errors import ConflictError
from jobs.models import Job
from jobs.settings import Settings
from jobs.upkeep.manifest import get_backup


def _submit(session: Session, settings: Settings, job_type: str, payload: dict[str, Any], actor: str) -> Job:
    job = service.submit(session, settings, service.Submission(job_type, payload, causation_id=actor))
    audit(session, None, actor, job_type, None, {**payload, "job_id": str(job.id)})
    return job


def back_up(session: Session, settings: Settings, target: str, actor: str) -> Job:
    return _submit(session, settings, "backup", {"target": target}, actor)


def verify(session: Session, settings: Settings, backup_id: uuid.UUID, actor: str) -> Job:
    get_backup(session, backup_id)
    return _submit(session, settings, "verify-backup", {"backup_id": str(backup_id)}, actor)


def restore(session: Session, settings: Settings, backup_id: uuid.UUID, into: str, actor: str) -> Job:
    """Restore into ``into``; only a verified backup is restored, and never over a live database
    (the ``restore-backup`` type refuses one). The audit entry keeps the URL without its password."""
    backup = get_backup(session, backup_id)
    if not backup.verified:
        raise ConflictError(
            f"Backup {backup_id} is not verified ({backup.verify_error or 'not yet checked'})."
        )
    return _submit(session, settings, "restore-backup", {"backup_id": str(backup_id), "into": into}, actor)


def drill(session: Session, settings: Settings, target: str, actor: str) -> Job:
    return _submit(session, settings, "restore-drill", {"target": target}, actor)
