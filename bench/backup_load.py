"""The idempotency-key purge at load: expired and live keys written straight into the platform's
database, and ``POST /v1/jobs`` latency measured by keep-alive clients while the window lasts."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench.clients import KeepAlive
from bench.report import percentile

CLIENT_PROCS, CLIENT_THREADS = 2, 2
HARD_CAP_S = 1800
KEY_COLUMNS = (
    "token_id, key, request_hash, response_status, response_body, response_location, created_at, expires_at"
)
# One statement per kind: a million rows in seconds, each as the API would have left it.
SEED = f"""
    INSERT INTO idempotency_keys ({KEY_COLUMNS})
    SELECT %(token)s, %(prefix)s || g, md5(g::text) || md5(g::text), 202,
           json_build_object('id', g), '/v1/jobs/' || g,
           now() - interval '2 days', now() + %(ttl)s::interval - g * interval '1 millisecond'
    FROM generate_series(1, %(count)s) g
"""


@dataclass
class Window:
    """The POSTs of one window: (sent at, seconds) for each accepted one, and the refusals."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def between(self, start: float, end: float) -> Window:
        inside = [(sent, took) for sent, took in self.samples if start <= sent <= end]
        return Window(inside, self.failed, self.errors)

    @property
    def seconds(self) -> float:
        if not self.samples:
            return 0.0
        return max(s + t for s, t in self.samples) - min(s for s, _ in self.samples)

    def ms(self, q: float) -> float:
        return percentile([took for _, took in self.samples], q) * 1000


def seed_keys(database_url: str, token_id: Any, expired: int, live: int) -> float:
    """``expired`` keys a day past their time to live and ``live`` ones a day short of it."""
    started = time.monotonic()
    with psycopg.connect(database_url) as conn:
        for prefix, ttl, count in (("bench-expired-", "-3 days", expired), ("bench-live-", "1 day", live)):
            params = {"token": token_id, "prefix": prefix, "ttl": ttl, "count": count}
            conn.execute(SEED, params)
        conn.commit()
        conn.execute("ANALYZE idempotency_keys")
    return time.monotonic() - started


def key_counts(database_url: str) -> dict[str, int]:
    """Keys left by kind: the seeded expired and live ones, and every live key."""
    query = """
        SELECT count(*) FILTER (WHERE key LIKE 'bench-expired-%%'),
               count(*) FILTER (WHERE key LIKE 'bench-live-%%'),
               count(*) FILTER (WHERE expires_at > now())
        FROM idempotency_keys
    """
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return {"expired": int(row[0]), "seeded live": int(row[1]), "live": int(row[2])}


class Load:
    """Closed-loop POSTs of ``echo`` jobs, each with an Idempotency-Key of its own, from
    ``CLIENT_PROCS`` processes of ``CLIENT_THREADS`` keep-alive threads, until ``stop``."""

    def __init__(self, base_url: str, token: str, tag: str):
        self.ctx = multiprocessing.get_context("fork")
        self.halt = self.ctx.Event()
        self.results: Any = self.ctx.Queue()
        ready = self.ctx.Barrier(CLIENT_PROCS + 1, timeout=60)
        args = (base_url, token, tag, ready, self.halt, self.results)
        self.children = [
            self.ctx.Process(target=_client, args=(n, *args), daemon=True) for n in range(CLIENT_PROCS)
        ]
        for child in self.children:
            child.start()
        ready.wait()

    def stop(self) -> Window:
        self.halt.set()
        window = Window()
        try:
            for _ in self.children:
                found = self.results.get(timeout=60)
                window.samples += found["samples"]
                window.failed += found["failed"]
                window.errors += found["errors"][: 5 - len(window.errors)]
        finally:
            for child in self.children:
                child.join(5)
                if child.is_alive():
                    child.kill()
        return window


def _client(n: int, base_url: str, token: str, tag: str, ready: Any, halt: Any, results: Any) -> None:
    address = urlsplit(base_url)
    numbers = itertools.count()
    found: dict[str, Any] = {"samples": [], "failed": 0, "errors": []}
    lock = threading.Lock()
    deadline = time.monotonic() + HARD_CAP_S

    def send() -> None:
        connection = KeepAlive(address.hostname or "127.0.0.1", address.port or 80)
        while not halt.is_set() and time.monotonic() < deadline:
            request = _request(address.netloc, token, f"{tag}-{os.getpid()}-{next(numbers)}")
            sent = time.time()
            error = connection.post(request)
            with lock:
                if error is None:
                    found["samples"].append((sent, time.time() - sent))
                else:
                    found["failed"] += 1
                    found["errors"] = (found["errors"] + [error])[:5]
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(CLIENT_THREADS)]
    ready.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(found)


def _request(host: str, token: str, key: str) -> bytes:
    body = json.dumps({"type": "echo", "payload": {"key": key}}).encode()
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
