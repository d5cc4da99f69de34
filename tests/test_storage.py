"""The storage interface holds the same contract on a folder and on a real S3 server."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from jobs.errors import InvalidInputError, SettingsError
from jobs.settings import load_settings
from jobs.storage import ObjectMissingError, Storage, StorageError, StorageRefusedError, open_storage
from jobs.storage.s3 import PART_SIZE, S3Storage
from jobs.storage.s3_errors import classify
from jobs.storage.urls import Location
from tests.s3_server import S3Server
from tests.storage_helpers import open_root, put, read_all


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server) -> Storage:
    return open_root(request.param, tmp_path, s3_server)


class Exploding(io.RawIOBase):
    """A stream that fails after ``good`` bytes, as a dropped client would."""

    def __init__(self, good: int):
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            raise ConnectionResetError("the client went away")
        size = min(len(buffer), self.left)
        buffer[:size] = b"x" * size
        self.left -= size
        return size


def test_an_object_written_is_read_back_whole_and_by_range(storage: Storage) -> None:
    info = storage.write("docs/a.txt", io.BytesIO(b"hello world"), content_type="text/plain")
    assert info.size == 11
    assert read_all(storage, "docs/a.txt") == b"hello world"
    ranged = storage.open("docs/a.txt", 6, 9)
    assert ranged.read() == b"wor"
    assert storage.stat("docs/a.txt").content_type == "text/plain"


def test_a_large_object_goes_in_parts_and_comes_back_the_same(storage: Storage) -> None:
    data = os.urandom(PART_SIZE * 2 + 12345)
    storage.write("big.bin", io.BytesIO(data))
    stat = storage.stat("big.bin")
    assert stat.size == len(data)
    if storage.url.startswith("s3://"):
        assert stat.etag is not None and stat.etag.endswith("-3")
        assert stat.single_part_md5 is None
    assert hashlib.sha256(read_all(storage, "big.bin")).digest() == hashlib.sha256(data).digest()


def test_a_stream_that_fails_part_way_leaves_no_object(storage: Storage) -> None:
    with pytest.raises(ConnectionResetError):
        storage.write("broken.bin", io.BufferedReader(Exploding(PART_SIZE + 10)))
    assert list(storage.list()) == []


def test_a_listing_holds_every_object_under_the_prefix_and_no_other(storage: Storage) -> None:
    for key in ("a/c", "a-b", "a0", "b", "a/b/d"):
        put(storage, key, key.encode())
    assert sorted(info.key for info in storage.list()) == ["a-b", "a/b/d", "a/c", "a0", "b"]
    assert sorted(info.key for info in storage.list("a/")) == ["a/b/d", "a/c"]


def test_a_missing_object_is_named_by_its_url(storage: Storage) -> None:
    with pytest.raises(ObjectMissingError, match=storage.url_of("nope")):
        storage.stat("nope")
    with pytest.raises(ObjectMissingError):
        storage.open("nope")
    storage.delete("nope")


def test_a_key_that_would_climb_out_of_the_root_is_refused(tmp_path: Path, s3_server: S3Server) -> None:
    storage = open_root("file", tmp_path, s3_server)
    with pytest.raises(StorageRefusedError):
        put(storage, "../escape", b"x")
    assert not (tmp_path / "escape").exists()


def test_a_bucket_that_does_not_exist_is_a_permanent_error_naming_it(
    tmp_path: Path, s3_server: S3Server
) -> None:
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path), **s3_server.env})
    storage = open_storage("s3://no-such-bucket-here/x", settings)
    with pytest.raises(ObjectMissingError, match="no-such-bucket-here") as raised:
        list(storage.list())
    assert not raised.value.retriable


def test_an_unreachable_s3_server_is_a_retriable_error(tmp_path: Path, s3_server: S3Server) -> None:
    env = {**s3_server.env, "CONVEYOR_S3_ENDPOINT_URL": "http://127.0.0.1:9"}
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path), **env})
    with pytest.raises(StorageError) as raised:
        open_storage("s3://some-bucket/x", settings).stat("key")
    assert raised.value.retriable
    assert "s3://some-bucket/x/key" in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "s3://ab/x",
        "s3://Upper/x",
        "http://host/x",
        "file://relative/x",
        "file:///a/../etc",
        "s3://bucket/a//b",
    ],
)
def test_a_bad_storage_url_is_refused_before_any_call(url: str) -> None:
    with pytest.raises(InvalidInputError):
        open_storage(url, load_settings({}))


def test_a_file_url_outside_the_allowed_folders_is_refused(tmp_path: Path) -> None:
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)})
    for url in ("file:///etc", f"file://{tmp_path}/elsewhere"):
        with pytest.raises(InvalidInputError, match="CONVEYOR_FILE_ROOTS"):
            open_storage(url, settings)
    open_storage(f"file://{tmp_path}/storage/inside", settings)  # by default, the storage folder


def test_refused_credentials_are_a_permanent_error_naming_the_url(tmp_path: Path) -> None:
    guarded = S3Server(tmp_path, identities={"conveyor-key": "conveyor-secret"}).start()
    try:
        bucket = guarded.new_bucket()
        storage = S3Storage(Location("s3", bucket, "in"), guarded.client("conveyor-key", "wrong-secret"))
        with pytest.raises(StorageRefusedError, match=f"s3://{bucket}/in/doc.pdf") as raised:
            storage.stat("doc.pdf")
        assert not raised.value.retriable
        with pytest.raises(StorageRefusedError):
            list(storage.list())
    finally:
        guarded.stop()


def test_symbolic_links_are_neither_listed_nor_followed_out_of_the_folder(tmp_path: Path) -> None:
    settings = load_settings(
        {"CONVEYOR_DATA_DIR": str(tmp_path / "platform"), "CONVEYOR_FILE_ROOTS": str(tmp_path / "data")}
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not to be synced")
    root = tmp_path / "data" / "root"
    root.mkdir(parents=True)
    (root / "kept").write_text("a file")
    (root / "file-link").symlink_to(outside / "secret")
    (root / "folder-link").symlink_to(outside)
    storage = open_storage(f"file://{root}", settings)

    assert [info.key for info in storage.list()] == ["kept"]
    with pytest.raises(StorageRefusedError, match="symbolic link"):
        storage.open("folder-link/secret")
    with pytest.raises(StorageRefusedError, match="symbolic link"):
        put(storage, "folder-link/planted", b"x")
    assert sorted(path.name for path in outside.iterdir()) == ["secret"]
    with pytest.raises(InvalidInputError, match="CONVEYOR_FILE_ROOTS"):
        open_storage(f"file://{root}/folder-link", settings)


@pytest.mark.parametrize(
    "url", ["s3://[bad/x", "s3://bucket/photos#2024", "s3://bucket/x?y=1", "file:///tmp/a\x00b"]
)
def test_a_url_that_would_be_cut_short_or_cannot_be_parsed_is_refused(url: str) -> None:
    with pytest.raises(InvalidInputError):
        open_storage(url, load_settings({}))


def test_the_platforms_own_data_folder_is_refused_even_inside_the_allowed_folders(tmp_path: Path) -> None:
    settings = load_settings(
        {"CONVEYOR_DATA_DIR": str(tmp_path / "data"), "CONVEYOR_FILE_ROOTS": str(tmp_path)}
    )
    for url in (f"file://{tmp_path}", f"file://{tmp_path}/data", f"file://{tmp_path}/data/broker"):
        with pytest.raises(InvalidInputError, match="own data folder"):
            open_storage(url, settings)
    open_storage(f"file://{tmp_path}/data/storage/exports", settings)
    open_storage(f"file://{tmp_path}/elsewhere", settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("CONVEYOR_STORAGE_URL", "s3://Bad_Bucket/x"), ("CONVEYOR_STORAGE_URL", "file://relative/dir"),
     ("CONVEYOR_S3_ENDPOINT_URL", "seaweedfs:8333")],
)  # fmt: skip
def test_a_bad_storage_setting_stops_the_process_naming_it(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_a_key_no_folder_can_hold_is_a_permanent_error(tmp_path: Path, s3_server: S3Server) -> None:
    storage = open_root("file", tmp_path, s3_server)
    with pytest.raises(StorageRefusedError) as raised:
        put(storage, "n" * 300, b"x")
    assert not raised.value.retriable


def test_s3_settings_that_are_wrong_until_changed_are_a_permanent_error() -> None:
    from botocore.exceptions import ParamValidationError, ProfileNotFound

    for exc in (ProfileNotFound(profile="no-such-profile"), ParamValidationError(report="bad key")):
        mapped = classify(exc, "s3://bucket/x", "bucket")
        assert isinstance(mapped, StorageRefusedError), exc
        assert "s3://bucket/x" in str(mapped)
    assert classify(ValueError("the stream's own"), "s3://bucket/x", "bucket") is None
