"""A sync whose worker is killed part-way is run again and finishes, copying only what is missing."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.storage import open_storage
from tests.s3_server import S3Server
from tests.storage_helpers import contents, storage_settings
from tests.support import Backend, submit_and_publish, wait_until
from tests.tcp_proxy import TcpProxy

OBJECTS = 40
OBJECT_BYTES = 256 * 1024


@pytest.mark.e2e
def test_a_sync_killed_part_way_finishes_on_its_retry_without_copying_again(
    own_backend: Callable[..., Backend], s3_server: S3Server, tmp_path: Path
) -> None:
    slow = TcpProxy(s3_server.port)
    slow.delay_s = 0.01  # about 6 MB/s: the sync takes seconds, so the kill lands part-way
    env = {**s3_server.env, "CONVEYOR_S3_ENDPOINT_URL": f"http://127.0.0.1:{slow.port}"}
    backend = own_backend("embedded", CONVEYOR_LEASE_S="5", CONVEYOR_VISIBILITY_TIMEOUT_S="6", **env)
    source = open_storage(f"file://{backend.files_root / 'photos'}", backend.settings)
    for number in range(OBJECTS):
        source.write(f"p{number:02}.jpg", io.BytesIO(os.urandom(OBJECT_BYTES)))
    target = open_storage(f"{s3_server.fresh_prefix()}/photos", storage_settings(tmp_path, s3_server))
    backend.start_relay()
    doomed = backend.start_worker(concurrency=1)

    payload = {"source": source.url, "destination": target.url, "transfers": 1}
    job_id = submit_and_publish(backend, "s3-sync", payload)
    wait_until(lambda: len(list(target.list())) >= 5, 60, "five objects copied")
    os.killpg(doomed.pid, signal.SIGKILL)
    copied_before = len(list(target.list()))
    slow.delay_s = 0
    backend.start_worker(concurrency=1)

    job = backend.wait_for_job(job_id, "succeeded", "dead", timeout=90)
    slow.close()
    print(
        f"{copied_before} of {OBJECTS} objects were copied when the worker was killed; the retry: {job.result}"
    )
    assert job.state == "succeeded", job.error_message
    assert job.result is not None
    assert job.result["copied"] <= OBJECTS - copied_before
    assert job.result["skipped"] >= copied_before
    assert contents(target) == contents(source)
