"""Job handlers, one module per family, bound to the catalogue in ``jobs.catalogue`` by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks import diagnostics, s3_sync
from tasks.context import JobContext

Handler = Callable[[dict[str, Any], JobContext], Any]

HANDLERS: dict[str, Handler] = {
    "echo": diagnostics.echo,
    "sleep": diagnostics.sleep,
    "fail": diagnostics.fail,
    "crash": diagnostics.crash,
    "s3-sync": s3_sync.sync_prefix,
}
