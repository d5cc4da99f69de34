"""The tables, one module per aggregate; only Alembic makes the schema.

Importing this package imports every model, so ``Base.metadata`` is complete wherever it is read.
"""

from jobs.models.access import ApiToken, IdempotencyKey
from jobs.models.backups import Backup, RestoreDrill
from jobs.models.base import Base, UTCDateTime, utcnow
from jobs.models.dead_letters import AuditEntry, DeadLetter, DeadLetterState
from jobs.models.files import StoredFile
from jobs.models.imports import ImportProfile
from jobs.models.jobs import FINISHED_STATES, SHOWN_COLUMNS, Job, JobState, OutboxMessage, view_of
from jobs.models.schedules import Heartbeat, ScheduleRun, ScheduleState

__all__ = [
    "FINISHED_STATES",
    "SHOWN_COLUMNS",
    "ApiToken",
    "AuditEntry",
    "Backup",
    "Base",
    "DeadLetter",
    "DeadLetterState",
    "Heartbeat",
    "IdempotencyKey",
    "ImportProfile",
    "Job",
    "JobState",
    "OutboxMessage",
    "RestoreDrill",
    "ScheduleRun",
    "ScheduleState",
    "StoredFile",
    "UTCDateTime",
    "utcnow",
    "view_of",
]
