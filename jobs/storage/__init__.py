"""Storage behind one interface: ``file://`` folders and ``s3://`` buckets, chosen by URL.

OCR, imports, backups and S3 sync read and write through it; the files API keeps its uploads
in the storage ``CONVEYOR_STORAGE_URL`` names.
"""

from __future__ import annotations

import os

from jobs.errors import InvalidInputError
from jobs.settings import Settings
from jobs.storage.base import MD5_METADATA, MTIME_METADATA, ObjectInfo, Readable, Reader, Storage, Watched
from jobs.storage.errors import (
    ObjectMissingError,
    StorageError,
    StorageFullError,
    StorageRefusedError,
    StorageUnavailableError,
)
from jobs.storage.urls import Location, inside, parse_url, split_object

__all__ = [
    "MD5_METADATA",
    "MTIME_METADATA",
    "Location",
    "ObjectInfo",
    "ObjectMissingError",
    "Readable",
    "Reader",
    "Storage",
    "StorageError",
    "StorageFullError",
    "StorageRefusedError",
    "StorageUnavailableError",
    "Watched",
    "allowed_location",
    "open_object",
    "open_storage",
    "parse_url",
    "storage_at",
]


def open_storage(url: str, settings: Settings) -> Storage:
    """The storage ``url`` names, if a client may name it (``allowed_location``)."""
    return storage_at(allowed_location(url, settings), settings)


def open_object(url: str, settings: Settings, *, trusted: bool = False) -> tuple[Storage, str]:
    """The storage holding the object ``url`` names, and its key there. Only a ``trusted`` URL
    (one the platform made) skips ``allowed_location``."""
    parent, key = split_object(url)
    location = parse_url(parent) if trusted else allowed_location(parent, settings)
    return storage_at(location, settings), key


def allowed_location(url: str, settings: Settings) -> Location:
    """The location ``url`` names, if a client may name it: the storage folder (which the files
    API serves, and the offsite sync copies), or a folder inside ``CONVEYOR_FILE_ROOTS`` that is
    not the platform's own data folder (its database, broker and credentials)."""
    location = parse_url(url)
    if location.scheme == "s3":
        return location
    real = os.path.realpath(location.root)
    storage = parse_url(settings.storage_url)
    if storage.scheme == "file" and inside(real, os.path.realpath(storage.root)):
        return location
    if not any(inside(real, os.path.realpath(root)) for root in settings.file_roots):
        raise InvalidInputError(
            f"{url!r} is outside the folders this deployment may use (CONVEYOR_FILE_ROOTS: "
            f"{', '.join(settings.file_roots)})."
        )
    data = os.path.realpath(settings.data_dir)
    if inside(real, data) or inside(data, real):
        raise InvalidInputError(f"{url!r} reaches the platform's own data folder {settings.data_dir}.")
    return location


def storage_at(location: Location, settings: Settings) -> Storage:
    if location.scheme == "s3":
        from jobs.storage.s3 import S3Storage, client_for
        from jobs.storage.s3_errors import classify

        try:
            return S3Storage(location, client_for(settings))
        except Exception as exc:  # a bad profile or region fails here, before any request
            raise (classify(exc, location.url, location.root) or exc) from exc
    from jobs.storage.local import LocalStorage

    return LocalStorage(location)
