"""The purges beat fires as jobs, so each run has a recorded outcome like any other job."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from jobs import upkeep
from tasks.context import JobContext

log = logging.getLogger(__name__)


def purge_expired_idempotency_keys(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    def progress(done: int, of: int) -> None:
        ctx.progress(done * 100 // of if of else 100, f"{done} of {of} expired keys purged")

    count = upkeep.purge_expired_keys(ctx.sessions, payload["batch_size"], progress)
    log.info("Job %s purged %d expired idempotency keys.", ctx.job_id, count)
    return {"purged": count}


def purge_expired_dead_letters(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    retention = timedelta(days=ctx.settings.dead_letter_retention_days)
    count = upkeep.purge_expired_dead_letters(ctx.sessions, retention, actor=f"job:{ctx.job_id}")
    log.info("Job %s purged %d dead letters older than %d days.", ctx.job_id, count, retention.days)
    return {"purged": count}
