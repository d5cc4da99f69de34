"""Diagnostic job types used by tests, benchmarks and operators checking a deployment."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tasks.context import JobContext
from tasks.errors import PermanentError, RetryableError

CANCEL_CHECK_S = 0.1


def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    return payload


def sleep(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    total_s = payload["ms"] / 1000
    deadline = time.monotonic() + total_s
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(CANCEL_CHECK_S, left))
        done = 1 - max(0.0, deadline - time.monotonic()) / total_s
        ctx.progress(int(done * 100), "sleeping")
    return {"slept_ms": payload["ms"]}


def fail(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    time.sleep(payload["sleep_ms"] / 1000)
    if payload["permanent"]:
        raise PermanentError(payload["message"])
    if ctx.attempt <= payload["times"]:
        raise RetryableError(f"{payload['message']} (attempt {ctx.attempt} of {payload['times']})")
    return {"failed_times": payload["times"]}


MB = 1024 * 1024
_kept: list[bytes] = []
"""What `leak` jobs keep: never freed while the pool process lives."""


def leak(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    _kept.append(b"\x01" * (payload["mb"] * MB))  # filled, so every page is resident
    time.sleep(payload["ms"] / 1000)
    return {"pid": os.getpid(), "kept_mb": sum(len(block) for block in _kept) // MB}


def crash(payload: dict[str, Any], ctx: JobContext) -> dict[str, int]:
    if ctx.delivery <= payload["times"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"crashed_times": payload["times"]}
