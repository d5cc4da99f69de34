"""``file://`` storage: a folder, written through a temporary file so no reader sees half an object."""

from __future__ import annotations

import errno
import mimetypes
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from jobs.storage.base import ObjectInfo, Readable, Reader, Storage
from jobs.storage.errors import (
    ObjectMissingError,
    StorageError,
    StorageFullError,
    StorageRefusedError,
    StorageUnavailableError,
)
from jobs.storage.urls import check_key

TEMP_PREFIX = ".conveyor-partial-"
# What the same call will meet again: a full disk or an I/O error may pass, these do not.
REFUSED_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG,
     errno.EROFS, errno.EINVAL, errno.ELOOP, errno.ENOTEMPTY}
)  # fmt: skip
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
COPY_CHUNK = 1024 * 1024


class LocalStorage(Storage):
    @property
    def folder(self) -> Path:
        return Path(self.location.root)

    def path_of(self, key: str) -> Path:
        """The key's path, refused if a symbolic link on the way leads out of the folder."""
        path = self.folder / check_key(key, self.url)
        if not path.resolve().is_relative_to(self.folder.resolve()):
            raise StorageRefusedError(f"{self.url_of(key)} leads out of {self.url} through a symbolic link.")
        return path

    def open(self, key: str, start: int = 0, end: int | None = None) -> Reader:
        with self._mapped(key):
            file = self.path_of(key).open("rb")
        file.seek(start)
        return file if end is None else _Bounded(file, end - start)

    def write(
        self,
        key: str,
        stream: Readable,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        # Unbuffered, so a full disk fails the write that met it, mapped, and not the close again.
        with self.writing(key) as partial, partial.open("wb", buffering=0) as file:
            while chunk := stream.read(COPY_CHUNK):
                with self._mapped(key):
                    _write_all(file, chunk)
            with self._mapped(key):
                os.fsync(file.fileno())  # on disk before it is renamed into place and recorded
        return self.stat(key)

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        """A temporary path beside the object's, renamed onto it when the block ends well."""
        target = self.path_of(key)
        with self._mapped(key):
            target.parent.mkdir(parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
            os.close(descriptor)
        try:
            yield Path(name)
            with self._mapped(key):
                os.replace(name, target)
        finally:
            with suppress(FileNotFoundError):
                os.unlink(name)

    def stat(self, key: str) -> ObjectInfo:
        with self._mapped(key):
            found = self.path_of(key).stat()
        return ObjectInfo(key, found.st_size, found.st_mtime, content_type=mimetypes.guess_type(key)[0])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, found in self._walk(self.folder, ""):
            if key.startswith(prefix):
                yield ObjectInfo(key, found.st_size, found.st_mtime)

    def _walk(self, folder: Path, base: str) -> Iterator[tuple[str, os.stat_result]]:
        """Files under ``folder``, folder by folder. Symbolic links are left out, as rclone leaves
        them: one could lead anywhere on the host."""
        with self._mapped(base), os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), f"{base}{entry.name}/")
            elif entry.is_file(follow_symlinks=False) and not entry.name.startswith(TEMP_PREFIX):
                try:
                    found = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since its folder was read
                yield base + entry.name, found

    def delete(self, key: str) -> None:
        with self._mapped(key), suppress(FileNotFoundError):
            self.path_of(key).unlink()

    @contextmanager
    def _mapped(self, key: str) -> Iterator[None]:
        """Turn the OS's errors into storage errors that name the object's URL."""
        try:
            yield
        except StorageError:
            raise
        except FileNotFoundError:
            raise ObjectMissingError(f"Nothing is stored at {self.url_of(key)}.") from None
        except OSError as exc:
            kind = _kind_of(exc.errno)
            raise kind(f"{self.url_of(key)} cannot be used: {exc.strerror or exc}.") from None


def _write_all(file: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[file.write(view) :]


def _kind_of(number: int | None) -> type[StorageError]:
    if number in REFUSED_ERRNOS:
        return StorageRefusedError
    return StorageFullError if number in FULL_ERRNOS else StorageUnavailableError


class _Bounded:
    """A file read no further than ``left`` bytes: the tail of a byte range."""

    def __init__(self, file: BinaryIO, left: int):
        self.file, self.left = file, left

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.file.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.file.close()
