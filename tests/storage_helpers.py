"""Storage roots for the tests: a fresh folder, or a fresh bucket on the test S3 server."""

from __future__ import annotations

import io
from pathlib import Path

from jobs.settings import Settings, load_settings
from jobs.storage import Storage, open_storage
from tests.s3_server import S3Server


def storage_settings(data_dir: Path, s3_server: S3Server) -> Settings:
    """Settings whose ``file://`` URLs may name any folder under ``data_dir``, outside the
    platform's own data folder in it."""
    env = {"CONVEYOR_DATA_DIR": str(data_dir / "platform"), "CONVEYOR_FILE_ROOTS": str(data_dir)}
    return load_settings({**env, **s3_server.env})


def fresh_root(kind: str, data_dir: Path, s3_server: S3Server, prefix: str = "root") -> str:
    """The URL of an empty storage root of ``kind`` (``file`` or ``s3``)."""
    if kind == "file":
        folder = data_dir / f"storage-{prefix}"
        folder.mkdir(parents=True, exist_ok=True)
        return f"file://{folder}"
    return f"{s3_server.fresh_prefix()}/{prefix}"


def put(storage: Storage, key: str, data: bytes) -> None:
    storage.write(key, io.BytesIO(data))


def contents(storage: Storage) -> dict[str, bytes]:
    return {info.key: read_all(storage, info.key) for info in storage.list()}


def read_all(storage: Storage, key: str) -> bytes:
    stream = storage.open(key)
    try:
        return stream.read()
    finally:
        stream.close()


def open_root(kind: str, data_dir: Path, s3_server: S3Server, prefix: str = "root") -> Storage:
    settings = storage_settings(data_dir, s3_server)
    return open_storage(fresh_root(kind, data_dir, s3_server, prefix), settings)
