"""HTTP clients for the benchmark: several processes, each with a few keep-alive threads.

Processes, not only threads: on a two-core machine one Python process cannot build and parse
hundreds of requests a second while it competes with the server it measures. They write the
request bytes to a socket and read the status and body back, rather than use ``requests`` or
``http.client``, which spend several times the CPU per request: the benchmark's own load should
take as little as it can of the machine the server runs on.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT_S = 30


@dataclass
class Submissions:
    started: float
    finished: float
    accepted: int
    failed: int
    sample_errors: list[str] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    """Each request's time from send to answer, as its client saw it."""

    @property
    def per_second(self) -> float:
        return self.accepted / max(self.finished - self.started, 1e-9)


def submit_echo_jobs(
    base_url: str, token: str, count: int, processes: int, threads: int, correlation_id: str, batch: int = 1
) -> Submissions:
    """POST ``count`` echo jobs, one a request or ``batch`` a ``POST /v1/jobs/batch``;
    ``started`` is taken when every client is ready to send."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Barrier(processes + 1, timeout=60)
    results: Any = ctx.Queue()
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    args = (base_url, token, threads, correlation_id, batch, ready, results)
    children = [ctx.Process(target=_client_process, args=(share, *args), daemon=True) for share in shares]
    for child in children:
        child.start()
    try:
        ready.wait()
        started = time.time()
        deadline = REQUEST_TIMEOUT_S + count  # generous: one second per job at worst
        outcomes = [results.get(timeout=deadline) for _ in children]
    finally:
        for child in children:
            child.join(5)
            if child.is_alive():
                child.kill()
    return Submissions(
        started=started,
        finished=max(o["finished"] for o in outcomes),
        accepted=sum(o["accepted"] for o in outcomes),
        failed=sum(o["failed"] for o in outcomes),
        sample_errors=[e for o in outcomes for e in o["errors"]][:5],
        request_ms=[ms for o in outcomes for ms in o["request_ms"]],
    )


def _client_process(
    share: int,
    base_url: str,
    token: str,
    threads: int,
    correlation_id: str,
    batch: int,
    ready: Any,
    results: Any,
) -> None:
    numbers = itertools.count(step=batch)
    outcome: dict[str, Any] = {"accepted": 0, "failed": 0, "errors": [], "finished": 0.0, "request_ms": []}
    lock = threading.Lock()
    address = urlsplit(base_url)
    head = _head(address.netloc, token, "/v1/jobs" if batch == 1 else "/v1/jobs/batch")

    def send() -> None:
        connection = KeepAlive(address.hostname or "127.0.0.1", address.port or 80)
        while (first := next(numbers)) < share:
            jobs = [_echo(n, correlation_id) for n in range(first, min(first + batch, share))]
            body = json.dumps(jobs[0] if batch == 1 else {"jobs": jobs}).encode()
            sent = time.perf_counter()
            error = connection.post(head.format(length=len(body)).encode() + body)
            with lock:
                outcome["request_ms"].append((time.perf_counter() - sent) * 1000)
                outcome["finished"] = time.time()
                outcome["failed" if error else "accepted"] += len(jobs)
                if error and len(outcome["errors"]) < 5:
                    outcome["errors"].append(error)

    workers = [threading.Thread(target=send) for _ in range(threads)]
    ready.wait()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(outcome)


def _head(netloc: str, token: str, path: str) -> str:
    """The request's head, to be formatted with the body's ``length``."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )


def _echo(n: int, correlation_id: str) -> dict[str, Any]:
    return {"type": "echo", "payload": {"n": n}, "correlation_id": correlation_id}


class KeepAlive:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads the answers."""

    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, request: bytes) -> str | None:
        """None when the job was accepted, else a short description of what went wrong."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=REQUEST_TIMEOUT_S)
                self.buffer = b""
            self.sock.sendall(request)
            status, headers, body = self._response()
        except OSError as exc:
            self.close()  # the next request reconnects
            return f"{type(exc).__name__}: {exc}"
        if b"connection: close" in headers.lower():
            self.close()
        return None if status == 202 else f"HTTP {status}: {body[:200]!r}"

    def _response(self) -> tuple[int, bytes, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        headers, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = int(headers.split(b" ", 2)[1])
        found = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", headers)
        if found is None:
            raise OSError("the response has no Content-Length")
        length = int(found.group(1))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def _receive(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise OSError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
