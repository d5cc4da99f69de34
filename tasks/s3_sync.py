"""The ``s3-sync`` job: make a destination a copy of a source, with ``rclone sync``'s semantics.

An object is copied when the destination lacks it or holds a different one (by size, then by
mtime or by checksum); with ``delete``, what the source no longer has is removed, but only after
a pass with no errors. A run that crashed is simply run again: what already matches is skipped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from jobs.storage import ObjectInfo, ObjectMissingError, Storage, StorageError, open_storage
from jobs.storage.base import size_text
from jobs.storage.local import LocalStorage
from jobs.storage.s3 import S3Storage
from jobs.storage.transfer import copy, md5_known_here, same_content
from tasks.context import JobContext
from tasks.errors import PermanentError, RetryableError
from tasks.s3_sync_state import MAX_LISTED, PROGRESS_EVERY_S, Filter, Moving, Plan, Progress, Tally

T = TypeVar("T")
ERRORS_IN_MESSAGE = 10  # a failed job keeps its message only, so it names the first few
# How close two mtimes must be to be the same: S3 keeps LastModified to the second; a folder
# keeps what the copy set, to well under a millisecond.
S3_MTIME_PRECISION_S = 1.0
FOLDER_MTIME_PRECISION_S = 0.001


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
        self.progress.finish()
        if self.tally.error_count:
            self.fail(plan)
        return self.result(plan)

    def plan(self) -> Plan:
        """Compare the listings: the destination's is held as a map, the source's streamed."""
        theirs: dict[str, ObjectInfo] = {}
        for info in (info for info in self.listing(self.target) if self.selected(info.key)):
            theirs[info.key] = info
            self.progress.tick(0, f"listed {len(theirs)} objects at the destination")
        plan = Plan()
        for info in (info for info in self.source.list() if self.selected(info.key)):
            plan.listed += 1
            self.progress.tick(0, f"compared {plan.listed} objects")
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
        self.refuse_to_empty(plan)
        self.check(plan)
        return plan

    def listing(self, storage: Storage) -> Iterator[ObjectInfo]:
        """The destination's objects; a folder that does not exist yet holds none."""
        if isinstance(storage, LocalStorage) and not storage.folder.exists():
            return iter(())
        return storage.list()

    def refuse_to_empty(self, plan: Plan) -> None:
        """A source that lists nothing is more often a typo than a wish to empty the destination
        (rclone refuses it too): with ``delete``, nothing is done."""
        if self.payload["delete"] and not plan.listed and plan.extraneous:
            raise PermanentError(
                f"The source {self.source.url} holds no objects{' that match' if self.selected.include else ''}; "
                f"refusing to delete the {len(plan.extraneous)} objects of {self.target.url}. "
                "Check the source URL, or delete them without a sync."
            )

    def fresh(self, src: ObjectInfo, dst: ObjectInfo) -> bool:
        """Same size, and a copy at least as new as the source. A folder keeps the mtime the
        copy set, so it must match; S3 cannot set LastModified, so the copy must be newer."""
        if isinstance(self.target, LocalStorage):
            return abs(dst.mtime - src.mtime) < FOLDER_MTIME_PRECISION_S
        return dst.mtime > src.mtime - S3_MTIME_PRECISION_S

    def check(self, plan: Plan) -> None:
        checked = 0

        def compare(pair: tuple[ObjectInfo, ObjectInfo]) -> bool:
            return same_content(self.source, pair[0], self.target, pair[1])

        def compared(pair: tuple[ObjectInfo, ObjectInfo], same: Any, exc: BaseException | None) -> None:
            nonlocal checked
            checked += 1
            if exc is not None:
                self.tally.failed(pair[0].key, exc)
            elif same:
                plan.skipped += 1
            else:
                plan.copies.append(pair[0])

        def report() -> None:
            self.progress.tick(0, f"compared {checked} of {len(plan.checks)} checksums")

        # A checksum both sides know without asking S3 (a file's, an ETag's) is cheaper to
        # compare here than to hand to a thread; the rest need a request each.
        asks = [pair for pair in plan.checks if not self.known_here(pair)]
        for pair in (pair for pair in plan.checks if self.known_here(pair)):
            try:
                compared(pair, compare(pair), None)
            except Exception as exc:
                compared(pair, None, exc)
            report()
        self.parallel(compare, asks, compared, report)

    def known_here(self, pair: tuple[ObjectInfo, ObjectInfo]) -> bool:
        return md5_known_here(self.source, pair[0]) and md5_known_here(self.target, pair[1])

    def transfer(self, copies: list[ObjectInfo]) -> None:
        """Copy ``copies`` ``transfers`` at a time; progress counts bytes as they move."""
        total = sum(info.size for info in copies)
        moving = Moving()

        def send(info: ObjectInfo) -> None:
            copy(self.source, info, self.target, info.key, moving.add)

        def sent(info: ObjectInfo, _: Any, exc: BaseException | None) -> None:
            if exc is None:
                self.tally.copied += 1
                self.tally.bytes += info.size
            elif self.vanished(info):
                self.tally.vanished += 1
            else:
                self.tally.failed(info.key, exc)

        def report() -> None:
            done = min(moving.bytes, total)
            percent = int(99 * done / total) if total else 99
            message = f"copied {self.tally.copied} of {len(copies)} objects, {size_text(done)} of {size_text(total)}"
            self.progress.tick(percent, message)

        self.parallel(send, copies, sent, report)

    def vanished(self, info: ObjectInfo) -> bool:
        """Whether a source object that failed to copy was deleted since it was listed: not an
        error (a live store changes while it is synced), and the next run will not list it."""
        try:
            self.source.stat(info.key)
        except ObjectMissingError:
            return True
        except StorageError:
            return False
        return False

    def remove(self, keys: list[str]) -> None:
        self.progress.tick(99, f"deleting {len(keys)} objects", force=True)
        batches = [keys] if isinstance(self.target, S3Storage) else [[key] for key in keys]
        for batch in filter(None, batches):
            try:
                self.target.delete_many(batch)
            except StorageError as exc:
                self.tally.failed(batch[0], exc)
            else:
                self.tally.deleted += len(batch)

    def parallel(
        self,
        work: Callable[[T], Any],
        items: Iterable[T],
        finished: Callable[[T, Any, BaseException | None], None],
        report: Callable[[], None],
    ) -> None:
        """``work`` on each item, ``transfers`` at a time (twice that queued); ``finished`` hears
        of each as it ends and ``report`` is called at least once a second while any runs, both
        in this thread. A cancel raised by ``report`` drops what has not started and waits for
        what has."""
        width = self.payload["transfers"]
        waiting = iter(items)
        pool = ThreadPoolExecutor(width, thread_name_prefix="sync")
        futures: dict[Future[Any], T] = {
            pool.submit(work, item): item for item in itertools.islice(waiting, 2 * width)
        }
        try:
            while futures:
                done, _ = wait(futures, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
                for future in done:
                    exc = future.exception()
                    finished(futures.pop(future), None if exc else future.result(), exc)
                futures.update(
                    {pool.submit(work, item): item for item in itertools.islice(waiting, len(done))}
                )
                if futures:
                    report()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def fail(self, plan: Plan) -> None:
        tally = self.tally
        message = (
            f"{tally.error_count} objects failed to sync from {self.source.url} to "
            f"{self.target.url} ({tally.copied} copied, {plan.skipped} already matched"
            f"{', nothing deleted' if self.payload['delete'] else ''}). "
            + "; ".join(tally.errors[:ERRORS_IN_MESSAGE])
            + (
                f"; and {tally.error_count - ERRORS_IN_MESSAGE} more"
                if tally.error_count > ERRORS_IN_MESSAGE
                else ""
            )
        )
        raise (RetryableError if tally.retriable else PermanentError)(message)

    def result(self, plan: Plan) -> dict[str, Any]:
        dry = self.payload["dry_run"]
        result: dict[str, Any] = {
            "copied": len(plan.copies) if dry else self.tally.copied,
            "skipped": plan.skipped,
            "deleted": len(plan.extraneous) if dry and self.payload["delete"] else self.tally.deleted,
            "vanished": self.tally.vanished,
            "bytes": sum(info.size for info in plan.copies) if dry else self.tally.bytes,
            "errors": self.tally.errors,
            "duration_s": round(time.monotonic() - self.started, 3),
            "dry_run": dry,
        }
        if dry:
            result["would_copy"] = [info.key for info in plan.copies[:MAX_LISTED]]
            result["would_delete"] = plan.extraneous[:MAX_LISTED] if self.payload["delete"] else []
        return result
