"""The only writer of a job's state. The API, the CLI, the relay and the workers all call it.

Every function takes an open session (or, for the hot single statements, a connection) and leaves
committing to the caller, so that a state change and its outbox message are written in one
transaction. The modules follow a job's life: ``submission``, ``claims``, ``transitions``; reads
are in ``queries``. Callers use the names below.
"""

from jobs.service.claims import (
    Claim,
    Delivery,
    holds_live_lease,
    lapse_grace,
    mark_started,
    mark_succeeded,
    release_lease,
    renew_lease,
    settle_claim,
)
from jobs.service.families import (
    children_of,
    release,
    release_finished_families,
    update_parent_progress,
    wait_for_children,
)
from jobs.service.queries import (
    get,
    is_cancel_requested,
    is_unpublished,
    list_jobs,
    lost_jobs,
    unclaimed_jobs,
    unfinished_job,
)
from jobs.service.submission import Submission, job_row, submit, submit_row, submit_rows
from jobs.service.transitions import (
    CLAIMABLE,
    RETRYABLE_BY_HAND,
    backoff_ms,
    cancel,
    mark_cancelled,
    mark_dead,
    record_failure,
    recover_lost,
    report_progress,
    requeue,
    retry,
    send_again,
)

__all__ = [
    "CLAIMABLE",
    "RETRYABLE_BY_HAND",
    "Claim",
    "Delivery",
    "Submission",
    "backoff_ms",
    "cancel",
    "children_of",
    "get",
    "holds_live_lease",
    "is_cancel_requested",
    "is_unpublished",
    "job_row",
    "lapse_grace",
    "list_jobs",
    "lost_jobs",
    "mark_cancelled",
    "mark_dead",
    "mark_started",
    "mark_succeeded",
    "record_failure",
    "recover_lost",
    "release",
    "release_finished_families",
    "release_lease",
    "renew_lease",
    "report_progress",
    "requeue",
    "retry",
    "send_again",
    "settle_claim",
    "submit",
    "submit_row",
    "submit_rows",
    "unclaimed_jobs",
    "unfinished_job",
    "update_parent_progress",
    "wait_for_children",
]
