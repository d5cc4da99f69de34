"""Backups of PostgreSQL databases as the backup handlers run them: a dump streamed into the
backup storage, read back to verify it before it counts, then retention; a verification run
again; a restore. Each write to the platform's database is a short transaction of its own."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from jobs.catalogue.maintenance import target_urls
from jobs.errors import BackupNotFoundError
from jobs.models import Backup, utcnow
from jobs.settings import Settings
from jobs.storage import ObjectMissingError, Storage, StorageError, open_object, parse_url, storage_at
from jobs.upkeep import manifest
from jobs.upkeep.archives import check_archive, downloaded, restore
from jobs.upkeep.dumps import Snapshot, exported_snapshot, pg_dump
from jobs.upkeep.postgres import Database, UpkeepError, find_tool, identity
from jobs.upkeep.retention import Policy, Stored, expired

log = logging.getLogger(__name__)
Progress = Callable[[int, str], None]
"""``JobContext.progress``: told (percent, message); raises to stop the work."""


@dataclass(frozen=True)
class Dumped:
    """A dump stored, not yet verified."""

    id: uuid.UUID
    target: str
    key: str
    url: str
    size: int
    sha256: str
    started_at: datetime
    finished_at: datetime
    duration_s: float
    snapshot: Snapshot


def backup_storage(settings: Settings) -> Storage:
    """The storage CONVEYOR_BACKUP_URL names: the operator's own, so no client fence applies."""
    return storage_at(parse_url(settings.backup_url), settings)


def target_database(settings: Settings, target: str) -> Database:
    url = target_urls(settings).get(target)
    if url is None:
        raise UpkeepError(f"Backup target {target!r} is no longer configured (CONVEYOR_BACKUP_TARGETS).")
    return Database.at(url)


def major_of(version: str) -> int:
    return int(version.split(".")[0])


def take_backup(
    settings: Settings, sessions: sessionmaker[Session], target: str, job_id: uuid.UUID, progress: Progress
) -> dict[str, Any]:
    """Dump, verify, record; then retention, only once this backup counts. A dump that fails or
    is stopped leaves neither row nor object; one that fails verification is recorded
    unverified, and raises."""
    storage = backup_storage(settings)
    dumped = dump(settings, storage, target, progress)
    started = time.monotonic()
    with removed_on_error(storage, dumped.key):
        error = _check(storage, dumped, settings, progress)
    verify_s = time.monotonic() - started
    with sessions.begin() as session:
        _record(session, dumped, error, job_id)
    if error is not None:
        raise UpkeepError(f"Backup {dumped.id} of target {target!r} failed verification: {error}.")
    log.info("Backup %s of target %r is verified (%d bytes).", dumped.id, target, dumped.size)
    progress(96, f"Backup {dumped.id} is verified; applying retention to target {target!r}.")
    deleted = apply_retention(settings, sessions, target)
    return {**_summary(dumped), "verify_s": round(verify_s, 3), "deleted": deleted}


def dump(settings: Settings, storage: Storage, target: str, progress: Progress) -> Dumped:
    database = target_database(settings, target)
    backup_id, started_at = uuid.uuid4(), utcnow()
    key = f"{target}/{started_at:%Y%m%dT%H%M%SZ}-{backup_id}.dump"
    progress(1, f"Taking a snapshot of target {target!r} ({database.url}).")
    started = time.monotonic()
    with removed_on_error(storage, key), exported_snapshot(database) as snapshot:
        major = major_of(snapshot.server_version)
        purpose = f"back up server {snapshot.server_version} of target {target!r}"
        tool = find_tool("pg_dump", major, settings.pg_bin_dir, purpose)
        find_tool(
            "pg_restore", major, settings.pg_bin_dir, f"verify {purpose}"
        )  # before, not after, the dump
        expected = max(snapshot.database_size, 1)

        def told(size: int) -> None:
            progress(min(69, 5 + size * 64 // expected), f"Dumped {size} bytes of target {target!r}.")

        progress(5, f"Dumping target {target!r}, and counting its tables alongside.")
        with pg_dump(tool, database, snapshot.snapshot_id, told) as stream:
            info = storage.write(key, stream, content_type="application/octet-stream")
    duration = time.monotonic() - started
    url, sha = storage.url_of(key), stream.sha256
    return Dumped(backup_id, target, key, url, info.size, sha, started_at, utcnow(), duration, snapshot)


@contextmanager
def removed_on_error(storage: Storage, key: str) -> Iterator[None]:
    """Remove the dump at ``key`` if the block fails (its counts or its check could not be
    read): no row will name it. A failure to remove it must not hide the first one."""
    try:
        yield
    except BaseException:
        try:
            storage.delete(key)
        except ObjectMissingError:
            pass
        except StorageError:
            log.warning("A failed backup left its object %s behind.", storage.url_of(key), exc_info=True)
        raise


def _check(storage: Storage, dumped: Dumped, settings: Settings, progress: Progress) -> str | None:
    major = major_of(dumped.snapshot.server_version)
    purpose = f"read backup {dumped.id} of server {dumped.snapshot.server_version}"
    tool = find_tool("pg_restore", major, settings.pg_bin_dir, purpose)

    def told(size: int) -> None:
        progress(70 + 25 * size // max(dumped.size, 1), f"Verified {size} bytes of backup {dumped.id}.")

    return verification_error(storage, dumped.key, dumped.sha256, tool, told)


def verification_error(
    storage: Storage, key: str, sha256: str, tool: str, told: Callable[[int], None]
) -> str | None:
    """Why the stored object fails verification, or None. A storage error that may pass is
    raised (try again later); one that will not (the object is gone) is the failure."""
    try:
        return check_archive(storage, key, sha256, tool, told)
    except StorageError as exc:
        if exc.retriable:
            raise
        return str(exc).rstrip(".")


def _record(session: Session, dumped: Dumped, error: str | None, job_id: uuid.UUID) -> Backup:
    snapshot = dumped.snapshot
    return manifest.record_backup(
        session,
        id=dumped.id, target=dumped.target, url=dumped.url, size=dumped.size, sha256=dumped.sha256,
        started_at=dumped.started_at, finished_at=dumped.finished_at, duration_s=dumped.duration_s,
        server_version=snapshot.server_version, migration_head=snapshot.migration_head,
        tables=snapshot.tables, verified=error is None, verified_at=utcnow() if error is None else None,
        verify_error=error, job_id=job_id,
    )  # fmt: skip


def _summary(dumped: Dumped) -> dict[str, Any]:
    return {
        "backup_id": str(dumped.id),
        "target": dumped.target,
        "url": dumped.url,
        "size": dumped.size,
        "sha256": dumped.sha256,
        "duration_s": round(dumped.duration_s, 3),
        "tables": dumped.snapshot.tables,
    }


def apply_retention(settings: Settings, sessions: sessionmaker[Session], target: str) -> list[dict[str, str]]:
    """Delete what ``retention.expired`` chooses, object first, then row: an object that cannot
    be deleted keeps its row, so the next backup's retention tries again."""
    policy = Policy(settings.backup_keep_daily, settings.backup_keep_weekly, settings.backup_keep_monthly)
    with sessions() as session:
        rows = manifest.backups_of(session, target)
    urls = {row.id: row.url for row in rows}
    deleted = []
    for backup_id in expired([Stored(r.id, r.started_at, r.verified) for r in rows], policy):
        try:
            storage, key = open_object(urls[backup_id], settings, trusted=True)
            storage.delete(key)
        except StorageError:
            log.warning(
                "Retention could not delete backup %s at %s.", backup_id, urls[backup_id], exc_info=True
            )
            continue
        with sessions.begin() as session:
            manifest.forget_backups(session, [backup_id])
        deleted.append({"backup_id": str(backup_id), "url": urls[backup_id]})
    log.info("Retention deleted %d backups of target %r.", len(deleted), target)
    return deleted


def stored_backup(sessions: sessionmaker[Session], backup_id: str | uuid.UUID) -> Backup:
    try:
        with sessions() as session:
            return manifest.get_backup(session, backup_id)
    except BackupNotFoundError as exc:
        raise UpkeepError(str(exc)) from None


def verify_again(
    settings: Settings, sessions: sessionmaker[Session], backup_id: str, progress: Progress
) -> dict[str, Any]:
    """Read a stored backup back as the backup did, and record the outcome either way."""
    backup = stored_backup(sessions, backup_id)
    storage, key = open_object(backup.url, settings, trusted=True)
    purpose = f"read backup {backup.id} of server {backup.server_version}"
    tool = find_tool("pg_restore", major_of(backup.server_version), settings.pg_bin_dir, purpose)

    def told(size: int) -> None:
        progress(100 * size // max(backup.size, 1), f"Verified {size} bytes of backup {backup.id}.")

    started = time.monotonic()
    error = verification_error(storage, key, backup.sha256, tool, told)
    with sessions.begin() as session:
        manifest.record_verification(session, backup.id, error)
    if error is not None:
        raise UpkeepError(f"Backup {backup.id} of target {backup.target!r} failed verification: {error}.")
    log.info("Backup %s of target %r verified again.", backup.id, backup.target)
    return {"backup_id": str(backup.id), "verified": True, "verify_s": round(time.monotonic() - started, 3)}


def counted_backup(sessions: sessionmaker[Session], backup_id: str | uuid.UUID) -> Backup:
    """The backup, if it counts: an unverified one is refused, whatever its sha256 says."""
    backup = stored_backup(sessions, backup_id)
    if not backup.verified:
        raise UpkeepError(
            f"Backup {backup.id} is not verified ({backup.verify_error or 'never checked'}); "
            "run verify-backup on it first."
        )
    return backup


def refuse_live(settings: Settings, into: Database) -> None:
    """The catalogue compares URLs as text; here the servers say which database ``into`` is, so
    a restore never lands on a target's live database however its URL is spelled."""
    restored = identity(into)
    for name, url in target_urls(settings).items():
        try:
            live = identity(Database.at(url))
        except UpkeepError:
            continue  # a target this worker cannot reach is not the database it just reached
        if live == restored:
            raise UpkeepError(f"Refusing to restore over the live database of target {name!r} ({into.url}).")


def restore_into(
    settings: Settings, sessions: sessionmaker[Session], backup_id: str, into_url: str, progress: Progress
) -> dict[str, Any]:
    """Download the backup under the data folder, check it, and ``pg_restore`` it into the
    existing database ``into_url``; the downloaded file is removed however it ends."""
    backup = counted_backup(sessions, backup_id)
    into = Database.at(into_url)
    refuse_live(settings, into)
    purpose = f"restore backup {backup.id} of server {backup.server_version}"
    tool = find_tool("pg_restore", major_of(backup.server_version), settings.pg_bin_dir, purpose)
    storage, key = open_object(backup.url, settings, trusted=True)
    started = time.monotonic()

    def fetched(size: int) -> None:
        progress(40 * size // max(backup.size, 1), f"Downloaded {size} bytes of backup {backup.id}.")

    with downloaded(storage, key, backup.sha256, settings.data_dir / "restores", fetched) as path:
        progress(40, f"Restoring backup {backup.id} into {into.url}.")
        restore(tool, path, into, lambda s: progress(50, f"Restoring backup {backup.id} ({s} s so far)."))
    log.info("Backup %s was restored into %s.", backup.id, into.url)
    return {"backup_id": str(backup.id), "into": into.url, "restore_s": round(time.monotonic() - started, 3)}
