"""HTTP clients for the benchmark: several processes, each with a few keep-alive threads.

Processes, not only threads: on a two-core machine one Python process cannot build and parse
hundreds of requests a second while it competes with the server it measures. They use
``http.client`` rather than ``requests``, which spends several times the CPU per request: the
benchmark's own load should take as little as it can of the machine the server runs on.
"""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing
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

    @property
    def per_second(self) -> float:
        return self.accepted / max(self.finished - self.started, 1e-9)


def submit_echo_jobs(
    base_url: str, token: str, count: int, processes: int, threads: int, correlation_id: str
) -> Submissions:
    """POST ``count`` echo jobs; ``started`` is taken when every client is ready to send."""
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Barrier(processes + 1, timeout=60)
    results: Any = ctx.Queue()
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    args = (base_url, token, threads, correlation_id, ready, results)
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
    )


def _client_process(
    share: int,
    base_url: str,
    token: str,
    threads: int,
    correlation_id: str,
    ready: Any,
    results: Any,
) -> None:
    numbers = itertools.count()
    outcome: dict[str, Any] = {"accepted": 0, "failed": 0, "errors": [], "finished": 0.0}
    lock = threading.Lock()

    address = urlsplit(base_url)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def send() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=REQUEST_TIMEOUT_S)
        while (n := next(numbers)) < share:
            body = {"type": "echo", "payload": {"n": n}, "correlation_id": correlation_id}
            error = _post(connection, json.dumps(body), headers)
            with lock:
                outcome["finished"] = time.time()
                outcome["failed" if error else "accepted"] += 1
                if error and len(outcome["errors"]) < 5:
                    outcome["errors"].append(error)

    workers = [threading.Thread(target=send) for _ in range(threads)]
    ready.wait()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(outcome)


def _post(connection: http.client.HTTPConnection, body: str, headers: dict[str, str]) -> str | None:
    """None when the job was accepted, else a short description of what went wrong."""
    try:
        connection.request("POST", "/v1/jobs", body, headers)
        response = connection.getresponse()
        text = response.read()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()  # the next request reconnects
        return f"{type(exc).__name__}: {exc}"
    if response.status != 202:
        return f"HTTP {response.status}: {text[:200]!r}"
    return None
