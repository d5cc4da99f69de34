"""The import job through the API and a real worker: killed with SIGKILL in the middle of its
COPY, it runs again and the table ends with every row once, never a part."""

from __future__ import annotations

import io
import os
import signal
import uuid
from collections.abc import Callable

import psycopg
import pytest

from api import create_app
from jobs import files
from jobs.imports import profiles
from jobs.imports.targets import target_database
from tests.support import Backend, auth, child_pids, submit, wait_until

pytestmark = pytest.mark.e2e
ROWS = 300_000


def big_csv(rows: int) -> bytes:
    """Quoted names, so every line takes the exact path: slow enough to be stopped part-way."""
    lines = ["id,name,amount,at,active"]
    lines += [
        f'{n},"name-{n}",{n % 1000}.25,2026-01-01T00:00:{n % 60:02d}Z,{"true" if n % 2 else "false"}'
        for n in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as connection:
        found = connection.execute(f"SELECT count(*), count(DISTINCT id) FROM imports.{table}").fetchone()
    assert found is not None and found[0] == found[1]
    return int(found[0])


def prepared(backend: Backend) -> tuple[str, str, str]:
    """A table, a profile for it and an uploaded file of ROWS rows: (target URL, table, file id)."""
    url, table = target_database(backend.settings, "platform").url, f"t_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS imports")
        connection.execute(
            f"CREATE TABLE imports.{table} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric, at timestamptz, active boolean)"
        )
    columns = [
        {"name": n, "type": t}
        for n, t in [
            ("id", "bigint"),
            ("name", "text"),
            ("amount", "numeric"),
            ("at", "timestamptz"),
            ("active", "boolean"),
        ]
    ]
    with backend.sessions.begin() as session:
        profiles.save(
            session,
            backend.settings,
            "big",
            profiles.load_definition(
                {"schema": "imports", "table": table, "columns": columns, "keys": ["id"]}
            ),
            "test",
        )
        with files.upload(
            backend.settings, io.BytesIO(big_csv(ROWS)), name="big.csv", content_type="text/csv"
        ) as row:
            session.add(row)
    return url, table, str(row.id)


def test_an_import_killed_mid_copy_runs_again_and_loads_every_row_once(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("redis")
    url, table, file_id = prepared(backend)
    worker = backend.start_worker(concurrency=1)
    backend.start_relay()
    client = create_app(backend.settings).test_client()
    token = backend.token("jobs:write", "jobs:read")

    job_id = submit(client, token, "import", {"profile": "big", "file": file_id})
    wait_until(lambda: backend.job(job_id).progress > 0, 120, "the import to be part-way")
    os.kill(child_pids(worker.pid)[0], signal.SIGKILL)
    assert count(url, table) == 0  # the staged rows went with the killed transaction

    job = backend.wait_for_job(job_id, "succeeded", "dead", timeout=180)
    assert job.state == "succeeded" and job.attempts == 2, job.error_message
    assert job.result is not None and (job.result["rows_read"], job.result["inserted"]) == (ROWS, ROWS)
    assert count(url, table) == ROWS


def test_a_cancelled_import_merges_nothing(own_backend: Callable[..., Backend]) -> None:
    backend = own_backend("redis")
    url, table, file_id = prepared(backend)
    backend.start_worker(concurrency=1)
    backend.start_relay()
    client = create_app(backend.settings).test_client()
    token = backend.token("jobs:write", "jobs:read")

    job_id = submit(client, token, "import", {"profile": "big", "file": file_id})
    wait_until(lambda: backend.job(job_id).progress > 0, 120, "the import to be part-way")
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(token)).status_code == 200

    assert backend.wait_for_job(job_id, "cancelled", "succeeded", timeout=60).state == "cancelled"
    assert count(url, table) == 0
