"""The ``s3-sync`` job: make a destination a copy of a source, with ``rclone sync``'s semantics.

An object is copied when the destination lacks it or holds a different one (by size, then by
mtime or by checksum); with ``delete``, what the source no longer has is removed, but only after
a pass with no errors. A run that crashed is simply run again: what already matches is skipped.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jobs.storage import ObjectInfo, Storage, StorageError, open_storage
from jobs.storage.local import LocalStorage
from jobs.storage.s3 import S3Storage
from jobs.storage.transfer import copy, same_content
from tasks.context import JobContext
from tasks.errors import PermanentError, RetryableError

T = TypeVar("T")
PROGRESS_EVERY_S = 1.0
MAX_LISTED = 100
# S3 keeps LastModified to the second, so two mtimes this close are the same mtime.
MTIME_WINDOW_S = 1.0


@dataclass
class Plan:
    copies: list[ObjectInfo] = field(default_factory=list)
    checks: list[tuple[ObjectInfo, ObjectInfo]] = field(default_factory=list)
    extraneous: list[str] = field(default_factory=list)
    skipped: int = 0


@dataclass
class Tally:
    copied: int = 0
    deleted: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    retriable: bool = False

    def failed(self, key: str, exc: BaseException) -> None:
        self.error_count += 1
        self.retriable = self.retriable or not isinstance(exc, StorageError) or exc.retriable
        if len(self.errors) < MAX_LISTED:
            self.errors.append(f"{key}: {exc}")


class Moving:
    """Bytes moved so far, added to from the transfers' threads."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lock = threading.Lock()

    def add(self, count: int) -> None:
        with self.lock:
            self.bytes += count


def _size(count: float) -> str:
    """Bytes as a person reads them: ``12.3 MB``."""
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("KB", "MB"):
        count /= 1000
        if count < 1000:
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} GB"


class Progress:
    """The job's progress, written at most once a second; a cancelled job raises here."""

    def __init__(self, ctx: JobContext):
        self.ctx = ctx
        self.last = 0.0

    def tick(self, percent: int, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.ctx.progress(percent, message)


class Filter:
    """``include`` and ``exclude`` globs (``*`` matches across ``/``) on keys under the root."""

    def __init__(self, include: list[str], exclude: list[str]):
        self.include, self.exclude = include, exclude

    def __call__(self, key: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(key, glob) for glob in self.include):
            return False
        return not any(fnmatch.fnmatchcase(key, glob) for glob in self.exclude)


def sync_prefix(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return Sync(payload, ctx).run()


class Sync:
    def __init__(self, payload: dict[str, Any], ctx: JobContext):
        self.payload = payload
        self.source = open_storage(payload["source"], ctx.settings)
        self.target = open_storage(payload["destination"], ctx.settings)
        self.selected = Filter(payload["include"], payload["exclude"])
        self.progress = Progress(ctx)
        self.tally = Tally()
        self.started = time.monotonic()

    def run(self) -> dict[str, Any]:
        plan = self.plan()
        if not self.payload["dry_run"]:
            self.transfer(plan.copies)
            if self.payload["delete"] and not self.tally.error_count:
                self.remove(plan.extraneous)
        self.progress.tick(100, "done", force=True)
        if self.tally.error_count:
            self.fail(plan)
        return self.result(plan)

    def plan(self) -> Plan:
        """Compare the listings: the destination's is held as a map, the source's streamed."""
        theirs = {info.key: info for info in self.listing(self.target) if self.selected(info.key)}
        plan = Plan()
        for seen, info in enumerate(info for info in self.source.list() if self.selected(info.key)):
            self.progress.tick(0, f"compared {seen} objects")
            have = theirs.pop(info.key, None)
            if have is None or have.size != info.size:
                plan.copies.append(info)
            elif self.payload["compare"] == "checksum":
                plan.checks.append((info, have))
            elif self.fresh(info, have):
                plan.skipped += 1
            else:
                plan.copies.append(info)
        plan.extraneous = list(theirs)
        self.check(plan)
        return plan

    def listing(self, storage: Storage) -> Iterator[ObjectInfo]:
        """The destination's objects; a folder that does not exist yet holds none."""
        if isinstance(storage, LocalStorage) and not storage.folder.exists():
            return iter(())
        return storage.list()

    def fresh(self, src: ObjectInfo, dst: ObjectInfo) -> bool:
        """Same size, and a copy at least as new as the source. A folder keeps the mtime the
        copy set, so it must match; S3 cannot set LastModified, so the copy must be newer."""
        if isinstance(self.target, LocalStorage):
            return abs(dst.mtime - src.mtime) < MTIME_WINDOW_S
        return dst.mtime > src.mtime - MTIME_WINDOW_S

    def check(self, plan: Plan) -> None:
        def compare(pair: tuple[ObjectInfo, ObjectInfo]) -> bool:
            return same_content(self.source, pair[0], self.target, pair[1])

        def checked(pair: tuple[ObjectInfo, ObjectInfo], same: Any, exc: BaseException | None) -> None:
            if exc is not None:
                self.tally.failed(pair[0].key, exc)
            elif same:
                plan.skipped += 1
            else:
                plan.copies.append(pair[0])

        def report() -> None:
            self.progress.tick(
                0, f"checked {plan.skipped + len(plan.copies)} of {len(plan.checks)} checksums"
            )

        self.parallel(compare, plan.checks, checked, report)

    def transfer(self, copies: list[ObjectInfo]) -> None:
        """Copy ``copies`` ``transfers`` at a time; progress counts bytes as they move."""
        total = sum(info.size for info in copies)
        moving = Moving()

        def send(info: ObjectInfo) -> None:
            copy(self.source, info, self.target, info.key, moving.add)

        def sent(info: ObjectInfo, _: Any, exc: BaseException | None) -> None:
            if exc is not None:
                self.tally.failed(info.key, exc)
                return
            self.tally.copied += 1
            self.tally.bytes += info.size

        def report() -> None:
            done = min(moving.bytes, total)
            percent = int(99 * done / total) if total else 99
            message = f"copied {self.tally.copied} of {len(copies)} objects, {_size(done)} of {_size(total)}"
            self.progress.tick(percent, message)

        self.parallel(send, copies, sent, report)

    def remove(self, keys: list[str]) -> None:
        self.progress.tick(99, f"deleting {len(keys)} objects", force=True)
        batches = [keys] if isinstance(self.target, S3Storage) else [[key] for key in keys]
        for batch in filter(None, batches):
            try:
                self._delete(batch)
            except StorageError as exc:
                self.tally.failed(batch[0], exc)
            else:
                self.tally.deleted += len(batch)

    def _delete(self, keys: list[str]) -> None:
        if isinstance(self.target, S3Storage):
            self.target.delete_many(keys)
        else:
            self.target.delete(keys[0])

    def parallel(
        self,
        work: Callable[[T], Any],
        items: Iterable[T],
        finished: Callable[[T, Any, BaseException | None], None],
        report: Callable[[], None],
    ) -> None:
        """``work`` on each item, ``transfers`` at a time; ``finished`` hears of each as it ends
        and ``report`` is called at least once a second, both in this thread. A cancel raised
        by ``report`` drops the items not yet started and waits for those running."""
        pool = ThreadPoolExecutor(self.payload["transfers"], thread_name_prefix="sync")
        futures: dict[Future[Any], T] = {pool.submit(work, item): item for item in items}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
                for future in done:
                    exc = future.exception()
                    finished(futures[future], None if exc else future.result(), exc)
                report()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def fail(self, plan: Plan) -> None:
        tally = self.tally
        message = (
            f"{tally.error_count} objects failed to sync from {self.source.url} to "
            f"{self.target.url} ({tally.copied} copied, {plan.skipped} already matched"
            f"{', nothing deleted' if self.payload['delete'] else ''}); first: {tally.errors[0]}"
        )
        raise (RetryableError if tally.retriable else PermanentError)(message)

    def result(self, plan: Plan) -> dict[str, Any]:
        dry = self.payload["dry_run"]
        result: dict[str, Any] = {
            "copied": len(plan.copies) if dry else self.tally.copied,
            "skipped": plan.skipped,
            "deleted": len(plan.extraneous) if dry and self.payload["delete"] else self.tally.deleted,
            "bytes": sum(info.size for info in plan.copies) if dry else self.tally.bytes,
            "errors": self.tally.errors,
            "duration_s": round(time.monotonic() - self.started, 3),
            "dry_run": dry,
        }
        if dry:
            result["would_copy"] = [info.key for info in plan.copies[:MAX_LISTED]]
            result["would_delete"] = plan.extraneous[:MAX_LISTED] if self.payload["delete"] else []
        return result
