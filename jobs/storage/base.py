"""The one interface every storage backend gives: stream in, stream out, stat, list, delete."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from jobs.storage.urls import Location

# rclone's metadata names, so either tool can read what the other stored.
MD5_METADATA = "md5chksum"
MTIME_METADATA = "mtime"


class Readable(Protocol):
    """What ``Storage.write`` takes: anything read in chunks, a file or a request body."""

    def read(self, size: int = -1, /) -> bytes: ...


class Reader(Readable, Protocol):
    """What ``Storage.open`` gives: a file, or an HTTP body, read in chunks and closed."""

    def close(self) -> None: ...


class Watched:
    """A stream whose every read is told to ``seen`` (the count of bytes it gave): a progress
    bar, or a long upload keeping its idempotency key held."""

    def __init__(self, stream: Readable, seen: Callable[[int], None]):
        self.stream, self.seen = stream, seen

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.seen(len(data))
        return data


@dataclass(frozen=True)
class ObjectInfo:
    """One object, as a listing or a stat sees it. ``key`` is relative to the storage's root;
    ``etag`` is S3's (unquoted; an MD5 unless it has a ``-N`` part count); ``metadata`` is
    filled by ``stat`` only, since listings do not carry it."""

    key: str
    size: int
    mtime: float
    etag: str | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def single_part_md5(self) -> str | None:
        """The object's MD5 when its ETag is one (a single-part upload), else None."""
        if self.etag and "-" not in self.etag and len(self.etag) == 32:
            return self.etag
        return None


class Storage(ABC):
    """A root (a folder, or a bucket and prefix) holding objects named by relative keys."""

    def __init__(self, location: Location):
        self.location = location

    @property
    def url(self) -> str:
        return self.location.url

    def url_of(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    @abstractmethod
    def open(self, key: str, start: int = 0, end: int | None = None) -> Reader:
        """A stream of the object's bytes from ``start`` up to ``end`` (exclusive)."""

    @abstractmethod
    def write(
        self,
        key: str,
        stream: Readable,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store ``stream`` whole, or nothing: a failure part-way leaves no object behind."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """The object's size, mtime, ETag, content type and metadata; ObjectMissingError if none."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, fetched page by page. The order is the
        backend's own: SeaweedFS lists folder by folder, not in S3's byte order of keys."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; an object that is already gone is not an error."""

    def delete_many(self, keys: Sequence[str]) -> None:
        """Remove each object; S3 removes a thousand in one request."""
        for key in keys:
            self.delete(key)


def size_text(count: float) -> str:
    """Bytes as a person reads them: ``12.3 MB``."""
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("KB", "MB"):
        count /= 1000
        if count < 1000:
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} GB"
