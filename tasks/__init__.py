"""Job handlers, one module per family, bound to the catalogue in ``jobs.catalogue`` by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks import backups, diagnostics, maintenance, ocr, s3_sync
from tasks.context import JobContext
from tasks.imports.job import import_file

Handler = Callable[[dict[str, Any], JobContext], Any]

HANDLERS: dict[str, Handler] = {
    "echo": diagnostics.echo,
    "sleep": diagnostics.sleep,
    "fail": diagnostics.fail,
    "crash": diagnostics.crash,
    "leak": diagnostics.leak,
    "s3-sync": s3_sync.sync_prefix,
    "purge-idempotency-keys": maintenance.purge_expired_idempotency_keys,
    "purge-dead-letters": maintenance.purge_expired_dead_letters,
    "backup": backups.backup_database,
    "verify-backup": backups.verify_backup,
    "restore-backup": backups.restore_backup,
    "restore-drill": backups.drill_restore,
    "ocr": ocr.recognise_document,
    "ocr-pages": ocr.recognise_pages,
    "import": import_file,
}
