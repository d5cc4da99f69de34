"""Dead letters: what the broker-side dead-letter queues held, indexed, and what operators do
with them. The API and the CLI call these same functions; every requeue and purge is audited.

``store`` indexes failures, ``queries`` reads, ``operations`` requeues and purges.
"""

from jobs.dead_letters.operations import (
    CORRECTION_REFUSED,
    purge,
    purge_expired,
    requeue,
    requeue_matching,
    retry_job,
)
from jobs.dead_letters.queries import (
    Filter,
    count,
    get,
    history,
    letters_of,
    list_dead_letters,
    matching,
    stats,
    types_matching,
    view,
    views,
)
from jobs.dead_letters.store import Failure, index

__all__ = [
    "CORRECTION_REFUSED",
    "Failure",
    "Filter",
    "count",
    "get",
    "history",
    "index",
    "letters_of",
    "list_dead_letters",
    "matching",
    "purge",
    "purge_expired",
    "requeue",
    "requeue_matching",
    "retry_job",
    "stats",
    "types_matching",
    "view",
    "views",
]
