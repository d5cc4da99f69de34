"""Storage URLs (``file:///abs/dir``, ``s3://bucket/prefix``): parsed and checked without any
backend library, so the API can refuse a bad one at submit time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import SplitResult, unquote, urlsplit

from jobs.errors import InvalidInputError
from jobs.storage.errors import StorageRefusedError

# S3's rules for a bucket name: 3-63 lower-case letters, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Location:
    """Where a storage root is: ``scheme`` is ``file`` or ``s3``; ``root`` the folder or bucket;
    ``prefix`` the key prefix under the bucket, without slashes at either end."""

    scheme: str
    root: str
    prefix: str = ""

    @property
    def url(self) -> str:
        if self.scheme == "file":
            return f"file://{self.root}"
        return f"s3://{self.root}/{self.prefix}".rstrip("/")

    def contains(self, other: Location) -> bool:
        """Whether ``other`` is this location or lies inside it."""
        if self.scheme != other.scheme:
            return False
        if self.scheme == "file":
            return inside(other.root, self.root)
        return self.root == other.root and (not self.prefix or inside(other.prefix, self.prefix))


def parse_url(url: str) -> Location:
    """The location ``url`` names; raises InvalidInputError saying what is wrong with it. Whether
    a client may name it is ``jobs.storage.allowed_location``'s to say."""
    parts = _split(url)
    if parts.scheme == "s3":
        return _s3_location(url, parts.netloc, parts.path)
    if parts.scheme == "file":
        return _file_location(url, parts.netloc, unquote(parts.path))
    raise InvalidInputError(f"{url!r} is not a storage URL: use s3://bucket/prefix or file:///abs/dir.")


def _split(url: str) -> SplitResult:
    """``url``'s parts. A ``?`` or ``#`` would silently cut the URL short (a sync with ``delete``
    aimed at ``photos#old`` would work on ``photos``), so both are refused, as is a NUL."""
    if "\x00" in url or "?" in url or "#" in url:
        raise InvalidInputError(f"{url!r} holds a '?', '#' or NUL, which storage URLs may not.")
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise InvalidInputError(f"{url!r} is not a URL: {exc}.") from None


def split_object(url: str) -> tuple[str, str]:
    """The URL of the folder or prefix holding the object ``url`` names, and the object's key;
    a ``file://`` key is percent-decoded as its folder is."""
    parent, _, key = url.rstrip("/").rpartition("/")
    if not key or parent.endswith(":/"):
        raise InvalidInputError(f"{url!r} names no object: add the object's key after the bucket or folder.")
    parse_url(parent)
    return parent, unquote(key) if url.startswith("file:") else key


def _s3_location(url: str, bucket: str, path: str) -> Location:
    if not BUCKET_NAME.match(bucket):
        raise InvalidInputError(
            f"{url!r} names no valid bucket: a bucket name is 3 to 63 lower-case letters, digits, dots and hyphens."
        )
    prefix = path.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InvalidInputError(f"{url!r} has an empty, '.' or '..' segment in its prefix.")
    return Location("s3", bucket, prefix)


def _file_location(url: str, host: str, path: str) -> Location:
    if host not in ("", "localhost") or not path.startswith("/"):
        raise InvalidInputError(f"{url!r} is not an absolute file URL: write file:///abs/dir.")
    folder = PurePosixPath(path)
    if ".." in folder.parts:
        raise InvalidInputError(f"{url!r} has a '..' segment.")
    return Location("file", str(folder))


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_key(key: str, url: str) -> str:
    """``key`` if every segment of it can be a file name: a key of ``..`` must never climb out."""
    if not key or any(part in ("", ".", "..") for part in key.split("/")):
        raise StorageRefusedError(f"The key {key!r} under {url} cannot be a file path.")
    return key
