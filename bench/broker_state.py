"""Where the broker still holds messages once a chaos run has drained, on each broker."""

from __future__ import annotations

import re
import subprocess
import time

import redis

from bench.chaos_report import SHOWN
from jobs.broker.queues import QUEUES, dead_letter_queue_name
from tests.support import Backend


def print_broker_state(backend: Backend) -> None:
    """Where the broker holds messages now: evidence for a stuck job or a missing dead letter."""
    print(f"\nBroker state ({backend.name}):")
    if backend.name == "rabbitmq":
        vhost = backend.settings.broker_url.rsplit("/", 1)[1]
        argv = ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_ready"]
        done = subprocess.run([*argv, "messages_unacknowledged"], capture_output=True, text=True, timeout=60)
        print("  " + (done.stdout or done.stderr).strip().replace("\n", "\n  "))
        argv = ["rabbitmqctl", "-q", "list_channels", "-p", vhost, "name", "consumer_count"]
        done = subprocess.run([*argv, "messages_unacknowledged"], capture_output=True, text=True, timeout=60)
        print("  " + (done.stdout or done.stderr).strip().replace("\n", "\n  "))
    elif backend.name == "redis":
        print_redis_state(backend)
    else:
        folder = backend.settings.broker_dir / "messages"
        print(f"  {len(list(folder.glob('*')))} message files in {folder}")


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def waiting_on_redis(client: redis.Redis, queue: str) -> int:
    """Messages waiting in ``queue`` across the lists kombu keeps for its priority steps."""
    keys = [key for key in client.keys(f"{queue}*") if _text(key).split("\x06")[0] == queue]
    return sum(int(client.llen(key)) for key in keys)


def print_redis_state(backend: Backend) -> None:
    client = redis.Redis.from_url(backend.settings.broker_url)
    try:
        names = (*QUEUES, *(dead_letter_queue_name(q) for q in QUEUES))
        # kombu keeps one list per priority step: <queue>, then <queue>\x06\x16<step>.
        lengths = {q: waiting_on_redis(client, q) for q in names}
        print(f"  list lengths {lengths}")
        index: list[tuple[bytes, float]] = client.zrange("unacked_index", 0, -1, withscores=True)  # type: ignore[assignment]
        oldest = f"; oldest {time.time() - index[0][1]:.0f} s ago" if index else ""
        print(
            f"  unacked {client.hlen('unacked')}, unacked_index {len(index)}{oldest}; "
            f"unacked_mutex ttl {client.ttl('unacked_mutex')} s"
        )
        for tag, score in index[:SHOWN]:
            body = bytes(client.hget("unacked", tag) or b"")  # type: ignore[arg-type]
            task_id = re.search(rb'"id": "([^"]+)"', body)
            found = task_id.group(1).decode() if task_id else "?"
            print(f"  unacked since {time.time() - score:.0f} s: task {found} (tag {tag.decode()})")
    finally:
        client.close()
