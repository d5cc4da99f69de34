"""kombu's file-system transport, with messages that appear whole and queues that go away.

kombu's ``_put`` creates the message file, then writes it; a consumer listing the folder in
between moves away an empty file, fails to decode it and loses the message (or crashes its
worker). Here a message is written to a hidden name first and renamed into place, which is atomic.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps

ABANDONED_AFTER_S = 60


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own bases disagree
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        hidden = os.path.join(self.data_folder_out, f".{name}.part")
        with open(hidden, "wb") as file:
            file.write(dumps(payload).encode())
        os.replace(hidden, os.path.join(self.data_folder_out, name))

    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> None:
        """kombu creates a missing binding file with ``open("wb")``, which empties it before taking
        the lock: when processes bind to a new exchange at once (Flower's parallel inspect calls),
        one list can land over the tail of another and the exchange becomes unreadable."""
        self.control_folder.mkdir(exist_ok=True)
        entry = [routing_key or "", pattern or "", queue or ""]
        _update_bindings(
            self._exchange_file(exchange),
            lambda table: table if entry in table else [entry, *table],
            create=True,
        )


class Transport(filesystem.Transport):
    Channel = Channel


def is_transient(queue: str) -> bool:
    """Flower's event queues and ``celery inspect`` reply queues: auto-deleted on other brokers."""
    return queue.startswith("celeryev.") or queue.endswith(".reply.celery.pidbox")


def prune_abandoned_queues(messages: Path, control: Path, older_than_s: float = ABANDONED_AFTER_S) -> int:
    """Drop transient queues whose consumer went away; returns how many.

    Nothing here deletes an auto-delete queue when its consumer stops (Flower restarted, an
    inspect call finished), so workers would go on writing events for it, a file at a time, for
    ever. A transient queue whose oldest message has waited over a minute has no consumer.
    """
    now = time.time()
    files = [p for p in messages.iterdir() if not p.name.startswith(".")]
    queue_of = {p: p.name.partition(".")[2].removesuffix(".msg") for p in files}
    stale = set()
    for path, queue in queue_of.items():
        try:
            if is_transient(queue) and now - path.stat().st_mtime > older_than_s:
                stale.add(queue)
        except FileNotFoundError:
            continue
    for exchange in control.glob("*.exchange"):
        _unbind(exchange, stale)
    for path, queue in queue_of.items():
        if queue in stale:
            path.unlink(missing_ok=True)
    return len(stale)


def _unbind(exchange: Path, queues: set[str]) -> None:
    if queues:
        _update_bindings(exchange, lambda table: [entry for entry in table if entry[2] not in queues])


def _update_bindings(
    exchange: Path, change: Callable[[list[Any]], list[Any]], *, create: bool = False
) -> None:
    """Rewrite an exchange's binding table under the lock kombu's own binding code takes; with
    ``create``, make a missing file, but empty a file only once the lock is held."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    with os.fdopen(os.open(exchange, flags, 0o644), "rb+", buffering=0) as file:
        filesystem.lock(file, filesystem.LOCK_EX)
        try:
            table = json.loads(file.read() or b"[]")
            changed = change(table)
            if changed != table:
                file.seek(0)
                file.truncate()
                file.write(json.dumps(changed).encode())
        finally:
            filesystem.unlock(file)
