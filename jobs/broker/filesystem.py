"""kombu's file-system transport, with messages that appear whole, that a dead consumer cannot
take with it, and queues that go away.

kombu's ``_put`` creates the message file, then writes it; a consumer listing the folder in
between moves away an empty file, fails to decode it and loses the message (or crashes its
worker). Here a message is written to a hidden name first and renamed into place, which is atomic.

kombu's ``_get`` deletes a message as it hands it over, so a worker killed with messages reserved
loses them. Here a delivered message waits in the unacknowledged folder until it is acknowledged,
and one that waits there longer than the visibility timeout (its consumer died) is put back, as
Redis does (``restore_unacked``, run by the relay's sweep).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.transport.virtual import Empty
from kombu.utils.json import dumps

log = logging.getLogger(__name__)

ABANDONED_AFTER_S = 60
# Where a delivered message's held copy is named in its delivery info.
HELD = "conveyor_held"


def message_name(queue: str) -> str:
    """kombu's file name: ordered by time, then the queue it belongs to."""
    return f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own bases disagree
        name = message_name(queue)
        hidden = os.path.join(self.data_folder_out, f".{name}.part")
        with open(hidden, "wb") as file:
            file.write(dumps(payload).encode())
        os.replace(hidden, os.path.join(self.data_folder_out, name))

    @property
    def unacked_folder(self) -> str:
        return str(self.transport_options["unacked_folder"])

    def basic_consume(self, queue: Any, no_ack: Any, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._unacknowledged_queues().add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _unacknowledged_queues(self) -> set[Any]:
        """The queues consumed without acknowledgements (kombu keeps no such list)."""
        if not hasattr(self, "_no_ack_queues"):
            self._no_ack_queues: set[Any] = set()
        return self._no_ack_queues

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """The next message of ``queue``, kept in the unacknowledged folder until acknowledged
        (not for consumers that never acknowledge: Flower's events, control replies)."""
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.startswith(".") or name.partition(".")[2] != wanted:
                continue
            payload = self._take(name, os.path.join(self.unacked_folder, name))
            if payload is None:
                continue
            if queue in self._unacknowledged_queues():
                _forget_file(payload.pop("_held"))
            else:
                payload["properties"].setdefault("delivery_info", {})[HELD] = payload.pop("_held")
            return payload
        raise Empty()

    def _take(self, name: str, held: str) -> Any:
        """Move one message into the unacknowledged folder and read it; None if another consumer
        (or the sweep) moved it first. A file that is not a message is set aside, logged."""
        source = os.path.join(self.data_folder_in, name)
        try:
            os.utime(source)  # the visibility timeout runs from delivery, not from publishing
            os.replace(source, held)
            with open(held, "rb") as file:
                payload = json.loads(file.read())
        except FileNotFoundError:
            return None
        except ValueError:
            log.error("Message file %s is not a message; moved aside as %s.bad.", name, held)
            os.replace(held, held + ".bad")
            return None
        payload["_held"] = held
        return payload

    def basic_get(self, queue: Any, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack, **kwargs)
        if message is not None and no_ack:
            _forget(message)
        return message

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        message = self.qos._delivered.get(delivery_tag)
        super().basic_ack(delivery_tag, multiple)
        _forget(message)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        message = self.qos._delivered.get(delivery_tag)
        super().basic_reject(delivery_tag, requeue)  # a requeue puts a new copy first
        _forget(message)

    def _restore(self, message: Any) -> None:
        """At a clean shutdown kombu puts unacknowledged messages back; the held copy goes."""
        super()._restore(message)
        _forget(message)

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


def _forget(message: Any) -> None:
    held = (getattr(message, "delivery_info", None) or {}).get(HELD) if message is not None else None
    if held:
        _forget_file(held)


def _forget_file(held: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(held)


def restore_unacked(unacked: Path, messages: Path, older_than_s: float) -> int:
    """Put back the messages delivered longer ago than ``older_than_s`` and never acknowledged:
    their consumer died. Each goes back under a new name, so a late acknowledgement of the old
    delivery cannot remove the new one. A live consumer that is merely slow gets a duplicate,
    which the job row tells it to skip."""
    restored = 0
    now = time.time()
    for path in unacked.glob("*.msg"):
        queue = path.name.partition(".")[2].removesuffix(".msg")
        try:
            if now - path.stat().st_mtime > older_than_s:
                os.replace(path, messages / message_name(queue))
                restored += 1
        except FileNotFoundError:
            continue  # acknowledged meanwhile
    return restored


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
