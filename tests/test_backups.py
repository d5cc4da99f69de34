"""Backups of real PostgreSQL databases into real storage (a folder, SeaweedFS), run in this
process through the handlers, and one end to end through a worker."""

from __future__ import annotations

import hashlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from jobs.models import Backup
from jobs.storage import open_storage
from tasks.errors import JobCancelledError, PermanentError, RetryableError
from tests.backup_helpers import (
    HEAD,
    TABLES,
    Platform,
    add_blobs,
    count_rows,
    databases,
    drop_database,
    kill_pg_dump_after,
    make_target,
    pg_dump_children,
    platform,
)
from tests.s3_server import S3Server
from tests.services import free_port, fresh_postgres_database
from tests.support import Backend, submit_and_publish

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    url = make_target()
    yield url
    drop_database(url)


@pytest.fixture
def folder_platform(tmp_path: Path, target: str) -> Platform:
    return platform(tmp_path / "data", CONVEYOR_BACKUP_TARGETS=f"app={target}")


def s3_platform(tmp_path: Path, target: str, s3_server: S3Server) -> Platform:
    return platform(
        tmp_path / "data",
        CONVEYOR_BACKUP_TARGETS=f"app={target}",
        CONVEYOR_BACKUP_URL=s3_server.fresh_prefix(),
        CONVEYOR_S3_ENDPOINT_URL=s3_server.endpoint,
    )


@pytest.mark.parametrize("where", ["file", "s3"])
def test_a_backup_is_verified_and_its_row_counts_are_exact(
    where: str, tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    made = s3_platform(tmp_path, target, request.getfixturevalue("s3_server")) if where == "s3" else None
    made = made or platform(tmp_path / "data", CONVEYOR_BACKUP_TARGETS=f"app={target}")

    result = made.run("backup", target="app")

    assert {name: table["rows"] for name, table in result["tables"].items()} == TABLES
    assert result["tables"]["public.orders"]["estimate"] == 5000
    [backup] = made.backups()
    assert (backup.verified, backup.verify_error, backup.migration_head) == (True, None, HEAD)
    assert (str(backup.id), backup.size, backup.sha256) == (
        result["backup_id"],
        result["size"],
        result["sha256"],
    )
    assert backup.server_version.startswith("15.") and backup.url.startswith(f"{where}://")
    newest = made.newest_verified()
    assert newest is not None and newest.id == backup.id
    storage = open_storage(made.settings.backup_url, made.settings)
    [stored] = list(storage.list("app/"))
    reader = storage.open(stored.key)
    try:
        assert hashlib.sha256(reader.read()).hexdigest() == backup.sha256
    finally:
        reader.close()


def test_a_restore_drill_of_the_newest_verified_backup_passes_and_records_its_rto(
    folder_platform: Platform,
) -> None:
    before = databases("conveyor_drill_")
    folder_platform.run("backup", target="app")

    result = folder_platform.run("restore-drill", target="app")

    [drill] = folder_platform.drills()
    assert (drill.ok, drill.error, drill.tables_checked) == (True, None, len(TABLES))
    assert drill.rto_s == pytest.approx(drill.download_s + drill.restore_s + drill.check_s, abs=0.01)
    assert drill.rto_s > 0 and drill.backup_age_s > 0 and result["ok"] is True
    assert databases("conveyor_drill_") == before
    assert not list((folder_platform.settings.data_dir / "drills").iterdir())


def test_a_drill_whose_restored_counts_differ_fails_naming_the_table_and_both_counts(
    folder_platform: Platform,
) -> None:
    folder_platform.run("backup", target="app")
    [backup] = folder_platform.backups()
    tables = {**backup.tables, "public.orders": {"rows": 4999, "estimate": 5000}}
    with folder_platform.db.sessions.begin() as session:
        session.execute(update(Backup).where(Backup.id == backup.id).values(tables=tables))

    with pytest.raises(
        PermanentError, match=re.escape("table public.orders has 5000 rows restored but 4999 in the manifest")
    ):
        folder_platform.run("restore-drill", target="app")

    [drill] = folder_platform.drills()
    assert drill.ok is False and "public.orders" in (drill.error or "")


def test_a_tampered_backup_fails_verification_and_no_longer_counts(folder_platform: Platform) -> None:
    folder_platform.run("backup", target="app")
    [backup] = folder_platform.backups()
    path = folder_platform.object_path(backup)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(
        PermanentError, match=f"Backup {backup.id} of target 'app' failed verification: its sha256"
    ):
        folder_platform.run("verify-backup", backup_id=str(backup.id))

    [again] = folder_platform.backups()
    assert again.verified is False and "sha256" in (again.verify_error or "")
    assert folder_platform.newest_verified() is None
    with pytest.raises(PermanentError, match="no verified backup of target 'app' to drill"):
        folder_platform.run("restore-drill", target="app")


def test_retention_after_a_verified_backup_deletes_what_the_policy_does_not_keep(
    tmp_path: Path, target: str
) -> None:
    keep = {f"CONVEYOR_BACKUP_KEEP_{period}": "1" for period in ("DAILY", "WEEKLY", "MONTHLY")}
    made = platform(tmp_path / "data", CONVEYOR_BACKUP_TARGETS=f"app={target}", **keep)
    first = made.run("backup", target="app")
    second = made.run("backup", target="app")

    assert second["deleted"] == [{"backup_id": first["backup_id"], "url": first["url"]}]
    assert [str(b.id) for b in made.backups()] == [second["backup_id"]]
    storage = open_storage(made.settings.backup_url, made.settings)
    assert [info.key for info in storage.list("app/")] == [second["url"].rsplit("/backups/", 1)[1]]


def test_a_restore_puts_the_backup_into_an_existing_database(folder_platform: Platform) -> None:
    backup_id = folder_platform.run("backup", target="app")["backup_id"]
    into = fresh_postgres_database(f"conveyor_test_bk_into_{uuid.uuid4().hex[:8]}")
    try:
        result = folder_platform.run("restore-backup", backup_id=backup_id, into=into)
        assert result["into"] == into and result["restore_s"] > 0
        assert count_rows(into, '"Sales"."Line Items"') == TABLES["Sales.Line Items"]
    finally:
        drop_database(into)
    assert not list((folder_platform.settings.data_dir / "restores").iterdir())


def test_a_restore_refuses_a_targets_live_database_however_its_url_is_spelled(
    folder_platform: Platform, target: str
) -> None:
    backup_id = folder_platform.run("backup", target="app")["backup_id"]
    alias = target.replace("127.0.0.1", "localhost")
    assert alias != target

    with pytest.raises(PermanentError, match="Refusing to restore over the live database of target 'app'"):
        folder_platform.run("restore-backup", backup_id=backup_id, into=alias)


def test_an_unreachable_target_is_retried_naming_its_url(tmp_path: Path) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/gone"
    made = platform(tmp_path / "data", CONVEYOR_BACKUP_TARGETS=f"gone={url}")

    with pytest.raises(
        RetryableError, match=re.escape("Cannot connect to postgresql://postgres@127.0.0.1")
    ) as caught:
        made.run("backup", target="gone")

    assert "secret" not in str(caught.value) and made.backups() == []


def test_a_backup_folder_that_refuses_writes_fails_permanently_with_the_reason(
    folder_platform: Platform,
) -> None:
    """Root ignores file modes, but not the immutable attribute: a real refusal (EPERM)."""
    folder = Path(folder_platform.settings.backup_url.removeprefix("file://"))
    folder.mkdir(parents=True)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        with pytest.raises(PermanentError, match="cannot be used: Operation not permitted"):
            folder_platform.run("backup", target="app")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert folder_platform.backups() == []


def test_a_full_backup_disk_fails_permanently_though_other_jobs_would_retry(
    folder_platform: Platform,
) -> None:
    folder = Path(folder_platform.settings.backup_url.removeprefix("file://"))
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here: {mounted.stderr.decode().strip()}")
    try:
        _fill(folder / "filler")
        with pytest.raises(PermanentError, match=r"No space left on device.*storage is full"):
            folder_platform.run("backup", target="app")
        assert not list((folder / "app").iterdir())
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert folder_platform.backups() == []


def _fill(path: Path) -> None:
    with path.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(4096))
        except OSError:
            pass


@pytest.fixture(scope="module")
def big_target() -> Iterator[str]:
    """Big enough that its dump outlasts the first S3 parts: 40 MB that do not compress."""
    url = make_target("big")
    add_blobs(url, 40)
    yield url
    drop_database(url)


@pytest.mark.parametrize(("where", "kill_after"), [("file", 1), ("s3", 17 * MIB)])
def test_a_pg_dump_killed_mid_stream_leaves_no_row_and_no_object(
    where: str, kill_after: int, tmp_path: Path, big_target: str, request: pytest.FixtureRequest
) -> None:
    if where == "s3":
        s3_server = request.getfixturevalue("s3_server")
        made = s3_platform(tmp_path, big_target, s3_server)
    else:
        made = platform(tmp_path / "data", CONVEYOR_BACKUP_TARGETS=f"app={big_target}")
    made.reports.hook = kill_pg_dump_after(kill_after)

    with pytest.raises(RetryableError, match="pg_dump was killed by signal 9"):
        made.run("backup", target="app")

    assert made.backups() == []
    storage = open_storage(made.settings.backup_url, made.settings)
    assert list(storage.list("")) == []
    if where == "s3":
        bucket, prefix = made.settings.backup_url.removeprefix("s3://").split("/", 1)
        uploads = s3_server.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        assert uploads.get("Uploads", []) == []


def test_a_backup_cancelled_while_dumping_stops_pg_dump_and_keeps_nothing(folder_platform: Platform) -> None:
    folder_platform.reports.cancel_at = "Dumped "

    with pytest.raises(JobCancelledError):
        folder_platform.run("backup", target="app")

    assert folder_platform.backups() == [] and pg_dump_children() == []
    storage = open_storage(folder_platform.settings.backup_url, folder_platform.settings)
    assert list(storage.list("")) == []


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_a_backup_job_of_the_platform_database_succeeds_through_a_worker(backend: Backend) -> None:
    """The platform's own database is the target; the embedded backend's is SQLite (no pg_dump)."""
    job_id = submit_and_publish(backend, "backup", {"target": "platform"})

    job = backend.wait_for_job(job_id, "succeeded", timeout=60)

    assert job.result is not None and job.result["tables"]["public.jobs"]["rows"] >= 1
    assert job.result["url"].startswith(backend.settings.backup_url)
    assert job.progress == 100
