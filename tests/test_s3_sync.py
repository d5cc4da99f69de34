"""The s3-sync handler against real storage: rclone's semantics, both ways and both kinds."""

from __future__ import annotations

import dataclasses
import io
import os
import time
from pathlib import Path
from typing import Any

import pytest

from jobs.catalogue import validate_payload
from jobs.settings import Settings
from jobs.storage import Storage, open_storage
from jobs.storage.s3 import PART_SIZE
from tasks.errors import JobCancelledError, PermanentError
from tasks.s3_sync import Sync
from tests.s3_server import S3Server
from tests.storage_helpers import contents, fresh_root, put, storage_settings
from tests.sync_helpers import Reports, context, run_sync
from tests.tcp_proxy import TcpProxy

PAIRS = [("file", "s3"), ("s3", "file"), ("s3", "s3"), ("file", "file")]


@pytest.fixture
def settings(tmp_path: Path, s3_server: S3Server) -> Settings:
    return storage_settings(tmp_path, s3_server)


def roots(settings: Settings, s3_server: S3Server, kinds: tuple[str, str]) -> tuple[Storage, Storage]:
    source = fresh_root(kinds[0], Path(settings.file_roots[0]), s3_server, "source")
    target = fresh_root(kinds[1], Path(settings.file_roots[0]), s3_server, "target")
    return open_storage(source, settings), open_storage(target, settings)


def sync(settings: Settings, source: Storage, target: Storage, **options: Any) -> dict[str, Any]:
    return run_sync(settings, source=source.url, destination=target.url, **options)


@pytest.mark.parametrize("kinds", PAIRS, ids="-to-".join)
def test_a_first_sync_copies_everything_and_a_second_nothing(
    settings: Settings, s3_server: S3Server, kinds: tuple[str, str]
) -> None:
    source, target = roots(settings, s3_server, kinds)
    for key in ("a.txt", "nested/b.txt", "nested/deeper/c.bin"):
        put(source, key, key.encode() * 10)

    first = sync(settings, source, target)
    assert (first["copied"], first["skipped"], first["errors"]) == (3, 0, [])
    assert contents(target) == contents(source)
    for compare in ("size-mtime", "checksum"):
        again = sync(settings, source, target, compare=compare)
        assert (again["copied"], again["skipped"]) == (0, 3), compare


@pytest.mark.parametrize("kinds", PAIRS, ids="-to-".join)
def test_a_changed_object_of_the_same_size_is_copied_by_checksum(
    settings: Settings, s3_server: S3Server, kinds: tuple[str, str]
) -> None:
    source, target = roots(settings, s3_server, kinds)
    put(source, "same-size", b"first version")
    sync(settings, source, target)
    put(target, "same-size", b"other version")

    result = sync(settings, source, target, compare="checksum")
    assert result["copied"] == 1
    assert contents(target)["same-size"] == b"first version"


def test_a_folder_copy_keeps_the_mtime_so_a_touched_source_is_copied_again(
    settings: Settings, s3_server: S3Server
) -> None:
    source, target = roots(settings, s3_server, ("file", "file"))
    put(source, "f", b"data")
    sync(settings, source, target)
    path = Path(source.location.root) / "f"
    os.utime(path, (time.time() + 60, time.time() + 60))
    assert sync(settings, source, target)["copied"] == 1


@pytest.mark.parametrize("kinds", [("file", "s3"), ("s3", "file")], ids="-to-".join)
def test_a_multipart_object_is_compared_part_wise_never_falsely_equal(
    settings: Settings, s3_server: S3Server, kinds: tuple[str, str]
) -> None:
    source, target = roots(settings, s3_server, kinds)
    data = os.urandom(PART_SIZE + 1000)
    put(source, "big", data)
    put(target, "big", data)
    assert sync(settings, source, target, compare="checksum")["skipped"] == 1

    put(target, "big", data[:-1] + bytes([data[-1] ^ 1]))
    assert sync(settings, source, target, compare="checksum")["copied"] == 1
    assert sync(settings, source, target, compare="checksum")["skipped"] == 1


def test_delete_removes_what_the_source_lacks_but_not_what_is_excluded(
    settings: Settings, s3_server: S3Server
) -> None:
    source, target = roots(settings, s3_server, ("file", "s3"))
    put(source, "keep.txt", b"k")
    for key in ("gone.txt", "old/gone.txt", "local.tmp"):
        put(target, key, b"x")

    result = sync(settings, source, target, delete=True, exclude=["*.tmp"])
    assert result["deleted"] == 2
    assert sorted(contents(target)) == ["keep.txt", "local.tmp"]


def test_delete_is_skipped_after_a_pass_with_errors(settings: Settings, s3_server: S3Server) -> None:
    source, target = roots(settings, s3_server, ("s3", "file"))
    put(source, "blocked", b"a file")
    put(source, "fine", b"ok")
    put(target, "blocked/inside", b"a folder where the file should go")
    put(target, "extra", b"would be deleted")

    with pytest.raises(PermanentError, match=r"1 objects failed .* nothing deleted.*blocked"):
        sync(settings, source, target, delete=True)
    assert sorted(contents(target)) == ["blocked/inside", "extra", "fine"]


def test_a_dry_run_reports_the_changes_and_writes_nothing(settings: Settings, s3_server: S3Server) -> None:
    source, target = roots(settings, s3_server, ("file", "s3"))
    put(source, "new", b"n")
    put(target, "extra", b"e")

    result = sync(settings, source, target, delete=True, dry_run=True)
    assert (result["copied"], result["deleted"], result["dry_run"]) == (1, 1, True)
    assert (result["would_copy"], result["would_delete"]) == (["new"], ["extra"])
    assert sorted(contents(target)) == ["extra"]


def test_include_and_exclude_choose_the_keys(settings: Settings, s3_server: S3Server) -> None:
    source, target = roots(settings, s3_server, ("file", "file"))
    for key in ("a.jpg", "b.png", "raw/c.jpg"):
        put(source, key, b"x")
    sync(settings, source, target, include=["*.jpg"], exclude=["raw/*"])
    assert sorted(contents(target)) == ["a.jpg"]


def slowed(settings: Settings, proxy: TcpProxy) -> Settings:
    """The settings with S3 reached through ``proxy``, about 6 MB/s: a sync then takes seconds."""
    proxy.delay_s = 0.01
    return dataclasses.replace(settings, s3_endpoint_url=f"http://127.0.0.1:{proxy.port}")


def test_a_cancel_stops_between_objects(settings: Settings, s3_server: S3Server) -> None:
    source, target = roots(settings, s3_server, ("file", "s3"))
    for number in range(40):
        source.write(f"k{number:02}", io.BytesIO(os.urandom(256 * 1024)))
    proxy = TcpProxy(s3_server.port)
    try:
        with pytest.raises(JobCancelledError):
            run_sync(
                slowed(settings, proxy),
                Reports(cancel_at="copied"),
                source=source.url,
                destination=target.url,
                transfers=1,
            )
    finally:
        proxy.close()
    assert 0 < len(list(target.list())) < 40


def test_a_cancel_asked_for_once_the_work_is_done_does_not_undo_it(
    settings: Settings, s3_server: S3Server
) -> None:
    source, target = roots(settings, s3_server, ("file", "file"))
    put(source, "a", b"a")
    result = run_sync(settings, Reports(cancel_at="done"), source=source.url, destination=target.url)
    assert result["copied"] == 1


def test_a_delete_from_a_source_that_lists_nothing_is_refused(
    settings: Settings, s3_server: S3Server
) -> None:
    source, target = roots(settings, s3_server, ("s3", "file"))
    put(target, "precious.txt", b"keep me")
    with pytest.raises(PermanentError, match="refusing to delete the 1 objects"):
        sync(settings, source, target, delete=True)
    assert contents(target) == {"precious.txt": b"keep me"}


def test_a_source_object_deleted_mid_sync_is_counted_as_vanished_not_failed(
    settings: Settings, s3_server: S3Server
) -> None:
    source, target = roots(settings, s3_server, ("s3", "s3"))
    for key in ("stays", "goes"):
        put(source, key, key.encode())
    sync_ = Sync(
        validate_payload("s3-sync", {"source": source.url, "destination": target.url}, settings),
        context(settings),
    )
    plan = sync_.plan()
    source.delete("goes")
    sync_.transfer(plan.copies)
    assert (sync_.tally.copied, sync_.tally.vanished, sync_.tally.error_count) == (1, 1, 0)


def test_progress_is_written_at_most_once_a_second(settings: Settings, s3_server: S3Server) -> None:
    source, target = roots(settings, s3_server, ("file", "s3"))
    for number in range(200):
        put(source, f"k{number:03}", b"x" * 1000)
    reports = Reports()
    result = run_sync(settings, reports, source=source.url, destination=target.url)
    assert len(reports.seen) <= result["duration_s"] + 2
    assert reports.seen[-1][0] == 100


def test_a_large_objects_progress_counts_its_bytes_as_they_move(
    settings: Settings, s3_server: S3Server
) -> None:
    slow = TcpProxy(s3_server.port)
    settings = slowed(settings, slow)
    source, target = roots(settings, s3_server, ("file", "s3"))
    source.write("big.bin", io.BytesIO(os.urandom(20 * 1024 * 1024)))
    reports = Reports()
    try:
        run_sync(settings, reports, source=source.url, destination=target.url)
    finally:
        slow.close()
    partial = [(p, m) for p, m in reports.seen if 0 < p < 99]
    assert partial, reports.seen
    assert "of 1 objects" in (partial[0][1] or "")
