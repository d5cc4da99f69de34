"""Backups of PostgreSQL databases: dump, verify, restore, drill (being built; see issue 12)."""

from __future__ import annotations

from typing import Any

from tasks.context import JobContext
from tasks.errors import PermanentError


def _not_yet(payload: dict[str, Any], ctx: JobContext) -> Any:
    raise PermanentError("This job type is not built yet.")


backup_database = verify_backup = restore_backup = drill_restore = _not_yet
