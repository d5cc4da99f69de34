"""Restore drills: the newest verified backup of a target restored into a scratch database and
checked against its manifest, timed, so the recovery time is measured rather than hoped for.

The scratch database is ``CONVEYOR_RESTORE_DRILL_URL`` when set: it must exist and hold no
tables (a drill never overwrites what someone keeps there), and every schema the drill restored
into it is dropped afterwards (``public`` is made again, empty). Otherwise the drill creates
``conveyor_drill_<UTC yyyymmddHHMMSS>_<random>`` on the target's own server (its user needs CREATEDB)
and drops it afterwards ``WITH (FORCE)``, however the drill ends.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.orm import Session, sessionmaker

from jobs.models import Backup, utcnow
from jobs.settings import Settings
from jobs.storage import StorageError, open_object
from jobs.upkeep import manifest
from jobs.upkeep.archives import downloaded, restore
from jobs.upkeep.backups import Progress, major_of, target_database
from jobs.upkeep.dumps import contents
from jobs.upkeep.postgres import Database, UpkeepError, find_tool

log = logging.getLogger(__name__)
SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


@dataclass
class Timings:
    download_s: float = 0.0
    restore_s: float = 0.0
    check_s: float = 0.0
    tables_checked: int = 0
    error: str | None = None
    retriable: bool = False

    @property
    def rto_s(self) -> float:
        return self.download_s + self.restore_s + self.check_s


def drill(
    settings: Settings, sessions: sessionmaker[Session], target: str, job_id: uuid.UUID, progress: Progress
) -> dict[str, Any]:
    """Drill the newest verified backup of ``target``; a failed drill is recorded, then raised."""
    with sessions() as session:
        backup = manifest.newest_verified(session, target)
    if backup is None:
        raise UpkeepError(f"There is no verified backup of target {target!r} to drill.")
    started_at, timings = utcnow(), Timings()
    try:
        with scratch_database(settings, target_database(settings, target)) as scratch:
            _run(settings, backup, scratch, timings, progress)
    except (UpkeepError, StorageError) as exc:
        timings.error, timings.retriable = str(exc), exc.retriable
    except psycopg.Error as exc:
        timings.error = f"The drill's database work failed: {' '.join(str(exc).split())}"
        timings.retriable = isinstance(exc, psycopg.OperationalError)
    with sessions.begin() as session:
        row = _record(session, backup, job_id, started_at, timings)
    if timings.error is not None:
        raise UpkeepError(
            f"The restore drill of backup {backup.id} of target {target!r} failed: {timings.error}",
            retriable=timings.retriable,
        )
    log.info("Restore drill %s of backup %s passed in %.1f s.", row.id, backup.id, timings.rto_s)
    return manifest.drill_view(row)


def _run(settings: Settings, backup: Backup, scratch: Database, timings: Timings, progress: Progress) -> None:
    purpose = f"restore backup {backup.id} of server {backup.server_version}"
    tool = find_tool("pg_restore", major_of(backup.server_version), settings.pg_bin_dir, purpose)
    storage, key = open_object(backup.url, settings, trusted=True)
    clock = time.monotonic()

    def fetched(size: int) -> None:
        progress(5 + 35 * size // max(backup.size, 1), f"Downloaded {size} bytes of backup {backup.id}.")

    with downloaded(storage, key, backup.sha256, settings.data_dir / "drills", fetched) as path:
        timings.download_s = time.monotonic() - clock
        progress(40, f"Restoring backup {backup.id} into {scratch.url}.")
        clock = time.monotonic()
        restore(tool, path, scratch, lambda s: progress(60, f"Restoring backup {backup.id} ({s} s so far)."))
        timings.restore_s = time.monotonic() - clock
    progress(80, f"Checking the tables restored from backup {backup.id}.")
    clock = time.monotonic()
    timings.error, timings.tables_checked = first_mismatch(backup, scratch)
    timings.check_s = time.monotonic() - clock
    if timings.error is not None:
        raise UpkeepError(timings.error)


def first_mismatch(backup: Backup, restored: Database) -> tuple[str | None, int]:
    """The first difference between the manifest and the restored database (a missing table,
    an exact row count, the migration head), or None; and how many tables were checked."""
    with restored.connect() as connection:
        tables, head = contents(connection)
    checked = 0
    for name, expected in backup.tables.items():
        found = tables.get(name)
        if found is None:
            return f"table {name} is missing from the restored database", checked
        checked += 1
        if found["rows"] != expected["rows"]:
            return (
                f"table {name} has {found['rows']} rows restored but {expected['rows']} in the manifest",
                checked,
            )
    if head != backup.migration_head:
        return f"the migration head is {head} restored but {backup.migration_head} in the manifest", checked
    return None, checked


def _record(session: Session, backup: Backup, job_id: uuid.UUID, started_at: Any, timings: Timings) -> Any:
    return manifest.record_drill(
        session,
        backup_id=backup.id, target=backup.target, job_id=job_id, started_at=started_at,
        finished_at=utcnow(), ok=timings.error is None, error=timings.error,
        rto_s=round(timings.rto_s, 3), download_s=round(timings.download_s, 3),
        restore_s=round(timings.restore_s, 3), check_s=round(timings.check_s, 3),
        backup_age_s=round((started_at - backup.finished_at).total_seconds(), 3),
        tables_checked=timings.tables_checked,
    )  # fmt: skip


@contextmanager
def scratch_database(settings: Settings, target: Database) -> Iterator[Database]:
    """The database a drill restores into, emptied or dropped when the block ends."""
    if settings.restore_drill_url:
        scratch = Database.at(settings.restore_drill_url)
        _require_empty(scratch)
        try:
            yield scratch
        finally:
            _empty(scratch)
        return
    scratch = target.renamed(f"conveyor_drill_{utcnow():%Y%m%d%H%M%S}_{uuid.uuid4().hex[:6]}")
    _create(target, scratch)
    try:
        yield scratch
    finally:
        with target.connect(autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch.name))
            connection.execute(drop)


def _create(target: Database, scratch: Database) -> None:
    try:
        with target.connect(autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch.name)))
    except psycopg.Error as exc:
        raise UpkeepError(
            f"Cannot create the drill database {scratch.name} on {target.url}: {exc}. Its user needs "
            "CREATEDB, or set CONVEYOR_RESTORE_DRILL_URL to an empty database."
        ) from None


def _require_empty(scratch: Database) -> None:
    with scratch.connect() as connection:
        tables, _ = contents(connection)
    if tables:
        raise UpkeepError(
            f"The restore drill database {scratch.url} (CONVEYOR_RESTORE_DRILL_URL) is not empty: "
            f"it holds {', '.join(list(tables)[:5])}; a drill restores only into an empty database."
        )


def _empty(scratch: Database) -> None:
    """Drop every schema the drill restored, then make ``public`` again as a new database has it."""
    with scratch.connect(autocommit=True) as connection:
        query = f"SELECT n.nspname FROM pg_namespace n WHERE {SYSTEM_SCHEMAS}"
        for (schema,) in connection.execute(query).fetchall():
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        connection.execute("CREATE SCHEMA IF NOT EXISTS public")
