"""HTTP clients for the benchmark: several processes, each with a few keep-alive threads.

Processes, not only threads: on a two-core machine one Python process cannot build and parse
hundreds of requests a second while it competes with the server it measures.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

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

    def send() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while (n := next(numbers)) < share:
            body = {"type": "echo", "payload": {"n": n}, "correlation_id": correlation_id}
            error = _post(session, f"{base_url}/v1/jobs", body)
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


def _post(session: requests.Session, url: str, body: dict[str, Any]) -> str | None:
    """None when the job was accepted, else a short description of what went wrong."""
    try:
        response = session.post(url, json=body, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code != 202:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None
