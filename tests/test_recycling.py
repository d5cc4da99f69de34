"""Pool processes replaced at their limits, every job still run exactly once; and each worker
says at its start what it will do."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobs.errors import SettingsError
from jobs.settings import load_settings
from tests.conftest import with_one_worker
from tests.support import Backend, submit_and_publish
from workers.app import make_celery
from workers.recycling import Recycling, recycling
from workers.startup import describe


def test_a_worker_takes_the_strictest_limit_of_its_queues_unless_told() -> None:
    defaults = load_settings({})
    told = load_settings(
        {"CONVEYOR_WORKER_MAX_TASKS_PER_CHILD": "ocr=50", "CONVEYOR_WORKER_MAX_MEMORY_MB": "0"}
    )

    assert recycling(defaults, ["default"]) == Recycling(10_000, 512 * 1024)
    assert recycling(defaults, ["default", "ocr"]) == Recycling(200, 512 * 1024)
    assert recycling(told, ["ocr", "imports"]) == Recycling(50, 0)
    assert "never for its memory" in recycling(told, ["ocr"]).describe()


def worker_of(tmp_path: Path, env: dict[str, str], **options: Any) -> Any:
    """A Celery worker as `celery worker` builds it from its options, not started."""
    app = make_celery(load_settings({"CONVEYOR_DATA_DIR": str(tmp_path), **env}))
    return app.Worker(hostname=f"test-{uuid.uuid4().hex[:6]}@%h", **options)


@pytest.mark.filterwarnings("ignore:You're running the worker with superuser privileges")
def test_the_worker_runs_with_its_queues_limits_and_a_command_line_flag_wins(tmp_path: Path) -> None:
    ocr = worker_of(tmp_path, {}, queues=["ocr"])
    flagged = worker_of(tmp_path, {}, queues=["default"], max_tasks_per_child=5, max_memory_per_child=900)
    told = worker_of(
        tmp_path, {"CONVEYOR_WORKER_MAX_MEMORY_MB": "0"}, queues=["ocr", "imports"], exclude_queues=["ocr"]
    )

    assert (ocr.max_tasks_per_child, ocr.max_memory_per_child) == (200, 1024 * 1024)
    assert (flagged.max_tasks_per_child, flagged.max_memory_per_child) == (5, 900)
    assert (told.max_tasks_per_child, told.max_memory_per_child) == (500, None)
    assert describe(flagged)[-1].endswith(
        "after 5 jobs, and after the job that takes its peak resident memory above 900 KiB"
    )
    assert (
        describe(worker_of(tmp_path, {}, pool="threads"))[-1]
        == "recycling: none (the threads pool has no processes)"
    )


@pytest.mark.parametrize("value", ["ocr=lots", "printing=5", "-1", "ocr:5", "٣"])
def test_a_recycling_setting_that_is_not_a_number_per_known_queue_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="CONVEYOR_WORKER_MAX_MEMORY_MB"):
        load_settings({"CONVEYOR_WORKER_MAX_MEMORY_MB": value})


def run_leaks(backend: Backend, count: int, mb: int) -> list[int]:
    """Leak jobs one after another; the pool process each ran in, once all have succeeded."""
    ids = [submit_and_publish(backend, "leak", {"mb": mb}, no_relay=True) for _ in range(count)]
    jobs = [backend.wait_for_job(job_id, "succeeded", timeout=120) for job_id in ids]
    assert all((job.attempts, job.deliveries, job.dispatch) == (1, 1, 1) for job in jobs)
    return [int(job.result["pid"]) for job in jobs]  # type: ignore[index]


@pytest.mark.e2e
def test_a_leaking_handler_has_its_pool_process_replaced_at_the_memory_bound(
    own_backend: Callable[..., Backend],
) -> None:
    backend = with_one_worker(own_backend, "rabbitmq", CONVEYOR_WORKER_MAX_MEMORY_MB="default=200")

    pids = run_leaks(backend, 12, mb=40)

    runs = Counter(pids)
    assert len(runs) >= 3, f"pool processes seen: {runs}"
    assert all(count >= 2 for pid, count in runs.items() if pid != pids[-1]), runs  # not one a job


@pytest.mark.e2e
def test_a_pool_process_is_replaced_after_its_job_count_and_the_worker_says_so_at_start(
    own_backend: Callable[..., Backend],
) -> None:
    backend = with_one_worker(own_backend, "embedded", CONVEYOR_WORKER_MAX_TASKS_PER_CHILD="2")

    pids = run_leaks(backend, 6, mb=0)

    assert len(set(pids)) >= 3
    log = "".join(path.read_text() for path in backend.settings.data_dir.glob("*.log"))
    for line in (
        "queues: default, imports, maintenance, ocr",
        "concurrency: 1 (prefork pool)",
        "prefetch: 4 a process",
    ):
        assert line in log
    assert "recycling: a pool process is replaced after 2 jobs, and after the job that takes its peak" in log
