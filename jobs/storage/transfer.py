"""Copying one object between two storages by the cheapest path: a server-side copy between S3
locations, a parallel multipart upload or download between S3 and a folder, a file copy between
folders. Each path streams, so memory stays bounded whatever the object's size."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from jobs.storage.base import MD5_METADATA, MTIME_METADATA, ObjectInfo, Reader, Storage
from jobs.storage.local import LocalStorage
from jobs.storage.s3 import PART_SIZE, Moved, S3Storage

HASH_CHUNK = 1024 * 1024


def copy(source: Storage, info: ObjectInfo, target: Storage, key: str, moved: Moved = None) -> None:
    """Make ``target``'s ``key`` a copy of ``source``'s object ``info``, keeping its mtime where
    the target can hold one (a folder) and as metadata where it cannot (S3). ``moved`` is told
    of the bytes as they go, from the transfer's threads."""
    if isinstance(source, S3Storage) and isinstance(target, S3Storage):
        target.copy_from(source, info.key, key, info.size, moved)
    elif isinstance(source, LocalStorage) and isinstance(target, S3Storage):
        path = source.path_of(info.key)
        target.upload(path, key, _upload_metadata(path, info), info.size, moved)
    elif isinstance(target, LocalStorage):
        _into_folder(source, info, target, key, moved)
    else:
        raise TypeError(f"No way to copy from {type(source).__name__} to {type(target).__name__}.")


def _into_folder(source: Storage, info: ObjectInfo, target: LocalStorage, key: str, moved: Moved) -> None:
    with target.writing(key) as partial:
        if isinstance(source, S3Storage):
            source.download(info.key, partial, info.size, moved)
        else:
            _stream_to(source.open(info.key), partial, moved)
        os.utime(partial, (info.mtime, info.mtime))


def _stream_to(stream: Reader, path: Path, moved: Moved) -> None:
    try:
        with path.open("wb") as file:
            while chunk := stream.read(HASH_CHUNK):
                file.write(chunk)
                if moved:
                    moved(len(chunk))
    finally:
        stream.close()


def _upload_metadata(path: Path, info: ObjectInfo) -> dict[str, str]:
    """The mtime, and for an object sent in parts (whose ETag is no MD5) the MD5 too, as rclone
    stores them, so a later checksum comparison never needs to read the object back."""
    metadata = {MTIME_METADATA: f"{info.mtime:.9f}"}
    if info.size >= PART_SIZE:
        digest = file_digest(path, hashlib.md5)
        metadata[MD5_METADATA] = base64.b64encode(digest).decode()
    return metadata


def file_digest(path: Path, algorithm: Callable[[], hashlib._Hash]) -> bytes:
    with path.open("rb") as file:
        return hashlib.file_digest(file, algorithm).digest()


def multipart_etag(path: Path, part_size: int) -> str:
    """The ETag S3 gives an object uploaded in parts of ``part_size``: the MD5 of the parts' MD5s."""
    digests = []
    with path.open("rb") as file:
        while chunk := file.read(part_size):
            digests.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def md5_known_here(storage: Storage, info: ObjectInfo) -> bool:
    """Whether ``md5_of`` can answer without a request: a file's, or a single-part ETag."""
    return isinstance(storage, LocalStorage) or info.single_part_md5 is not None


def md5_of(storage: Storage, info: ObjectInfo) -> str | None:
    """The object's MD5 in hex, when it can be known without reading an S3 object back."""
    if isinstance(storage, LocalStorage):
        return file_digest(storage.path_of(info.key), hashlib.md5).hex()
    if info.single_part_md5:
        return info.single_part_md5
    stored = storage.stat(info.key).metadata.get(MD5_METADATA)
    return base64.b64decode(stored).hex() if stored else None


def same_content(source: Storage, src: ObjectInfo, target: Storage, dst: ObjectInfo) -> bool:
    """Whether two objects of the same size hold the same bytes. Unprovable counts as different:
    a sync must never skip an object on a guess."""
    if src.etag and src.etag == dst.etag:
        return True
    first, second = md5_of(source, src), md5_of(target, dst)
    if first and second:
        return first == second
    return _same_parts(source, src, target, dst)


def _same_parts(source: Storage, src: ObjectInfo, target: Storage, dst: ObjectInfo) -> bool:
    """A folder's file against a multipart S3 object with no stored MD5: rebuild its ETag."""
    pairs = ((source, src, target, dst), (target, dst, source, src))
    for local, file, remote, obj in pairs:
        if isinstance(local, LocalStorage) and isinstance(remote, S3Storage) and obj.etag:
            return multipart_etag(local.path_of(file.key), remote.part_size(obj.key)) == obj.etag
    return False
