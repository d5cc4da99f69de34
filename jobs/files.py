"""Files clients hand the platform: streamed into storage with their size and SHA-256 counted
on the way, recorded as a row, read back by range, deleted. The API and the CLI both use these."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.db import newest_first
from jobs.errors import StoredFileNotFoundError, TooLargeError
from jobs.models import StoredFile
from jobs.settings import Settings
from jobs.storage import Readable, Reader, Storage, StorageError, open_object, parse_url, storage_at

FILES_PREFIX = "files"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class Counted:
    """A stream read through: its size and SHA-256 so far, refused past ``limit`` bytes."""

    def __init__(self, stream: Readable, limit: int):
        self.stream, self.limit = stream, limit
        self.size = 0
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.size += len(data)
        if self.size > self.limit:
            raise TooLargeError(
                f"The file is larger than the limit of {self.limit} bytes (CONVEYOR_MAX_UPLOAD_BYTES)."
            )
        self.hash.update(data)
        return data


def files_storage(settings: Settings) -> Storage:
    return storage_at(parse_url(settings.storage_url), settings)


@contextmanager
def upload(
    settings: Settings, stream: Readable, *, name: str, content_type: str | None
) -> Iterator[StoredFile]:
    """Store ``stream`` and give its row, for the caller to add in its transaction; the stored
    object is removed again if the block fails, and nothing is kept of a stream that fails."""
    file_id = uuid.uuid4()
    storage = files_storage(settings)
    key = f"{FILES_PREFIX}/{file_id}"
    counted = Counted(stream, settings.max_upload_bytes)
    try:
        storage.write(key, counted, content_type=content_type)
        yield StoredFile(
            id=file_id,
            name=name,
            size=counted.size,
            sha256=counted.hash.hexdigest(),
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            url=storage.url_of(key),
        )
    except BaseException:
        with suppress(StorageError):
            storage.delete(key)
        raise


def get(session: Session, file_id: uuid.UUID) -> StoredFile:
    found = session.get(StoredFile, file_id)
    if found is None:
        raise StoredFileNotFoundError(f"No file has id {file_id}.")
    return found


def list_files(
    session: Session, limit: int, before: tuple[datetime, uuid.UUID] | None = None
) -> list[StoredFile]:
    query = newest_first(select(StoredFile), StoredFile.created_at, StoredFile.id, before)
    return list(session.scalars(query.limit(limit)))


def open_content(settings: Settings, row: StoredFile, start: int = 0, end: int | None = None) -> Reader:
    storage, key = open_object(row.url, settings, trusted=True)
    return storage.open(key, start, end)


def delete(session: Session, settings: Settings, file_id: uuid.UUID) -> None:
    """Remove the object, then the row (in the caller's transaction): a failed removal keeps both."""
    row = get(session, file_id)
    storage, key = open_object(row.url, settings, trusted=True)
    storage.delete(key)
    session.delete(row)
