"""Storage behind one interface: ``file://`` folders and ``s3://`` buckets, chosen by URL.

OCR, imports, backups and S3 sync read and write through it; the files API keeps its uploads
in the storage ``CONVEYOR_STORAGE_URL`` names.
"""

from __future__ import annotations

from jobs.errors import InvalidInputError
from jobs.settings import Settings
from jobs.storage.base import MD5_METADATA, MTIME_METADATA, ObjectInfo, Reader, Storage
from jobs.storage.errors import ObjectMissingError, StorageError, StorageRefusedError, StorageUnavailableError
from jobs.storage.urls import Location, parse_url

__all__ = [
    "MD5_METADATA",
    "MTIME_METADATA",
    "Location",
    "ObjectInfo",
    "ObjectMissingError",
    "Reader",
    "Storage",
    "StorageError",
    "StorageRefusedError",
    "StorageUnavailableError",
    "open_object",
    "open_storage",
    "parse_url",
    "storage_at",
]


def open_storage(url: str, settings: Settings) -> Storage:
    """The storage ``url`` names, refusing a ``file://`` URL outside ``CONVEYOR_FILE_ROOTS``."""
    return storage_at(parse_url(url, settings.file_roots), settings)


def open_object(url: str, settings: Settings, *, trusted: bool = False) -> tuple[Storage, str]:
    """The storage holding the object ``url`` names, and its key there. Only a ``trusted`` URL
    (one the platform made) may name a folder outside ``CONVEYOR_FILE_ROOTS``."""
    parent, _, key = url.rstrip("/").rpartition("/")
    if not key or parent.endswith(":/"):
        raise InvalidInputError(f"{url!r} names no object: add the object's key after the bucket or folder.")
    roots = () if trusted else settings.file_roots
    return storage_at(parse_url(parent, roots), settings), key


def storage_at(location: Location, settings: Settings) -> Storage:
    if location.scheme == "s3":
        from jobs.storage.s3 import S3Storage, client_for

        return S3Storage(location, client_for(settings))
    from jobs.storage.local import LocalStorage

    return LocalStorage(location)
