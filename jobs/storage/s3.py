"""``s3://`` storage through boto3 and its transfer manager: large objects go in parts, streamed,
so memory stays bounded whatever the object's size."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.settings import Settings
from jobs.storage.base import ObjectInfo, Readable, Reader, Storage
from jobs.storage.errors import StorageRefusedError
from jobs.storage.s3_errors import classify
from jobs.storage.urls import Location

MIB = 1024 * 1024
# Parts of 16 MiB (a stream of unknown size may reach 10,000 parts: 160 GB), four sent at a time.
# A file is read from disk as its parts go. A stream's parts must be held in memory until sent,
# so a stream holds one part at a time: 16 MiB, not 64, in a worker that may run a backup beside
# other jobs (a 1 GB pg_dump streamed with four parts held peaked 64 MB above the worker's own).
PART_SIZE = 16 * MIB
PARTS_AT_ONCE = 4
STREAM_PARTS_HELD = 1
CHUNK = 256 * 1024
DELETE_BATCH = 1000
# Told how many more bytes a transfer has moved, from the transfer's own threads.
Moved = Callable[[int], None] | None


@functools.cache
def _client(endpoint_url: str, region: str, addressing: str, pid: int, pool: int) -> Any:
    """One client per process (boto3's clients are thread-safe but not fork-safe). Credentials
    come from boto3's own chain: environment, profile, instance role."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": addressing},
        retries={"mode": "standard", "max_attempts": 4},
        max_pool_connections=pool,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region, config=config
    )


def client_for(settings: Settings, pool: int = 64) -> Any:
    addressing = settings.s3_addressing_style
    if addressing == "auto" and settings.s3_endpoint_url:
        addressing = "path"
    return _client(settings.s3_endpoint_url, settings.s3_region, addressing, os.getpid(), pool)


def transfer_config(parts_at_once: int = PARTS_AT_ONCE) -> Any:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=PART_SIZE,
        multipart_chunksize=PART_SIZE,
        max_concurrency=parts_at_once,
        max_io_queue=parts_at_once * 4,
    )
    # boto3 does not take these as arguments; s3transfer's default is 10 parts held per stream.
    config.max_in_memory_upload_chunks = parts_at_once
    config.max_in_memory_download_chunks = parts_at_once
    return config


class S3Storage(Storage):
    def __init__(self, location: Location, client: Any):
        super().__init__(location)
        self.client = client
        self.bucket = location.root

    def full_key(self, key: str) -> str:
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def open(self, key: str, start: int = 0, end: int | None = None) -> Reader:
        extra = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end else {}
        with self.mapped(key):
            body: Reader = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key), **extra)["Body"]
        return body

    def write(
        self,
        key: str,
        stream: Readable,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        extra = _extra_args(content_type, metadata)
        with self.mapped(key):
            self.client.upload_fileobj(
                stream, self.bucket, self.full_key(key), extra, Config=transfer_config(STREAM_PARTS_HELD)
            )
        return self.stat(key)

    # Below PART_SIZE each of these is one request. The transfer manager would cost a HEAD (for
    # a copy) and its own thread pools per object: twice the time for a sync of small files.

    def upload(
        self, path: Path, key: str, metadata: Mapping[str, str], size: int, moved: Moved = None
    ) -> None:
        """Send a local file; parts are read from disk as they go, never held whole."""
        extra = _extra_args(None, metadata)
        with self.mapped(key):
            if size >= PART_SIZE:
                config = transfer_config()
                self.client.upload_file(
                    str(path), self.bucket, self.full_key(key), extra, Callback=moved, Config=config
                )
                return
            with path.open("rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=body, **extra)
        if moved:
            moved(size)

    def download(self, key: str, path: Path, size: int, moved: Moved = None) -> None:
        with self.mapped(key):
            if size >= PART_SIZE:
                config = transfer_config()
                self.client.download_file(
                    self.bucket, self.full_key(key), str(path), Callback=moved, Config=config
                )
                return
            body = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))["Body"]
            with path.open("wb") as file:
                for chunk in body.iter_chunks(CHUNK):
                    file.write(chunk)
        if moved:
            moved(size)

    def copy_from(self, source: S3Storage, key: str, target_key: str, size: int, moved: Moved = None) -> None:
        """A server-side copy: the bytes never leave the S3 server."""
        copy_source = {"Bucket": source.bucket, "Key": source.full_key(key)}
        with self.mapped(target_key, f"{source.url_of(key)} (copying to {self.url_of(target_key)})"):
            if size >= PART_SIZE:
                config = transfer_config()
                self.client.copy(
                    copy_source, self.bucket, self.full_key(target_key), Callback=moved, Config=config
                )
                return
            self.client.copy_object(CopySource=copy_source, Bucket=self.bucket, Key=self.full_key(target_key))
        if moved:
            moved(size)

    def stat(self, key: str) -> ObjectInfo:
        with self.mapped(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        return ObjectInfo(
            key,
            head["ContentLength"],
            head["LastModified"].timestamp(),
            head["ETag"].strip('"'),
            head.get("ContentType"),
            head.get("Metadata", {}),
        )

    def part_size(self, key: str) -> int:
        """The size of a multipart object's first part, which its ETag was built on."""
        with self.mapped(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key), PartNumber=1)
        return int(head["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        root = f"{self.location.prefix}/" if self.location.prefix else ""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=root + prefix
        )
        with self.mapped(prefix):
            for page in pages:
                for item in page.get("Contents", ()):
                    if not item["Key"].endswith("/"):
                        yield _listed(item, len(root))

    def delete(self, key: str) -> None:
        with self.mapped(key):
            self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))

    def delete_many(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self.full_key(key)} for key in keys[start : start + DELETE_BATCH]]
            with self.mapped(keys[start]):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StorageRefusedError(
                    f"S3 refused to delete {len(answer['Errors'])} objects under {self.url}; "
                    f"first {first.get('Key')}: {first.get('Code')} {first.get('Message')}."
                )

    @contextmanager
    def mapped(self, key: str, url: str | None = None) -> Iterator[None]:
        """Turn boto3's errors into storage errors that name the object's URL."""
        try:
            yield
        except Exception as exc:
            mapped = classify(exc, url or self.url_of(key), self.bucket)
            if mapped is None:
                raise
            raise mapped from exc


def _extra_args(content_type: str | None, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"Metadata": dict(metadata)} if metadata else {}
    if content_type:
        extra["ContentType"] = content_type
    return extra


def _listed(item: dict[str, Any], cut: int) -> ObjectInfo:
    return ObjectInfo(
        item["Key"][cut:], item["Size"], item["LastModified"].timestamp(), item["ETag"].strip('"')
    )
