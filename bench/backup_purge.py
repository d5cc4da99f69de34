"""Part 5 of bench/backup.py: the API under load, without then during a purge of a million
expired idempotency keys, and a check that no live key went with them."""

from __future__ import annotations

import time
import uuid

from bench.backup_load import Load, Window, key_counts, seed_keys
from bench.backup_parts import Run, done, fresh_worker, step
from bench.backup_report import Purge, print_purge
from bench.backup_worker import JobRun
from bench.harness import BenchError, api_answers, free_port, load_average, poll
from jobs import tokens
from tests.support import Backend

PURGE_BATCH = 5000
WARM_LOAD_S = 2.0


def purge_part(run: Run, backend: Backend) -> None:
    """5: the API under load, without then during a purge of a million expired keys."""
    print(f"\n5. The idempotency-key purge at load (load average {load_average()})")
    # The worker exists before the keys do: its warm-up is a purge, which must find nothing.
    worker = run.worker or fresh_worker(run, backend, {})
    base_url, token = start_api(backend)
    step(f"seeding {run.args.expired_keys} expired and {run.args.live_keys} live keys")
    token_id = token_id_of(backend, token)
    print(f"{seed_keys(run.platform_url, token_id, run.args.expired_keys, run.args.live_keys):.1f} s")
    load = Load(base_url, token, "warm-up")
    time.sleep(WARM_LOAD_S)  # a fixed window of load, not a wait for an outcome
    warm = load.stop()
    step(f"POSTs for {run.args.window:.0f} s without the purge")
    load = Load(base_url, token, "quiet")
    time.sleep(run.args.window)
    quiet = done(load.stop())
    step("POSTs while the purge runs")
    load = Load(base_url, token, "purge")
    purged = worker.run("purge-idempotency-keys", {"batch_size": PURGE_BATCH}, run.args.timeout)
    busy = done(load.stop())
    record_purge(run, (warm, quiet, busy), purged)


def record_purge(run: Run, windows: tuple[Window, Window, Window], purged: JobRun) -> None:
    _, quiet, busy = windows
    if not purged.ok or purged.job is None:
        run.results.failed("purge-idempotency-keys", purged.error)
    during = busy
    if purged.job is not None and purged.job.started_at and purged.job.finished_at:
        during = busy.between(purged.job.started_at.timestamp(), purged.job.finished_at.timestamp())
    accepted = sum(len(w.samples) for w in windows)
    seeded = (run.args.expired_keys, run.args.live_keys)
    counts = key_counts(run.platform_url)
    run.results.purge = Purge(quiet, during, purged, counts, run.args.live_keys + accepted, seeded)
    print_purge(run.results.purge)
    if counts["seeded live"] != run.args.live_keys:
        run.results.failed("the purge", "it deleted live keys")


def start_api(backend: Backend) -> tuple[str, str]:
    port = free_port()
    api = backend.spawn("-m", "jobs.cli", "api", "--workers", "2", "--port", str(port))
    base_url = f"http://127.0.0.1:{port}"
    poll(lambda: api_answers(base_url), 1, 60, api, "the API to answer", required=True)
    return base_url, backend.token("jobs:write", "jobs:read")


def token_id_of(backend: Backend, token: str) -> uuid.UUID:
    with backend.sessions() as session:
        found = tokens.authenticate(session, token)
    if found is None:
        raise BenchError("the token just made does not authenticate")
    return found.id
