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
    """Remove bindings to ``queues`` under the lock kombu's own binding code takes."""
    if not queues:
        return
    with exchange.open("rb+", buffering=0) as file:
        filesystem.lock(file, filesystem.LOCK_EX)
        try:
            table = json.loads(file.read() or b"[]")
            kept = [entry for entry in table if entry[2] not in queues]
            if len(kept) != len(table):
                file.seek(0)
                file.truncate()
                file.write(json.dumps(kept).encode())
        finally:
            filesystem.unlock(file)
