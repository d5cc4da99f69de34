"""Pool processes replaced at their limits, every job still run exactly once; and each worker
says at its start what it will do."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobs.errors import SettingsError
from jobs.settings import load_settings
from tests.conftest import wait_for_worker
from tests.support import Backend, submit_and_publish
from workers.recycling import Recycling, recycling


def test_a_worker_takes_the_strictest_limit_of_its_queues_unless_told() -> None:
    defaults = load_settings({})
    told = load_settings(
        {"CONVEYOR_WORKER_MAX_TASKS_PER_CHILD": "ocr=50", "CONVEYOR_WORKER_MAX_MEMORY_MB": "0"}
    )

    assert recycling(defaults, ["default"]) == Recycling(10_000, 512)
    assert recycling(defaults, ["default", "ocr"]) == Recycling(200, 512)
    assert recycling(told, ["ocr", "imports"]) == Recycling(50, 0)
    assert "never for its memory" in recycling(told, ["ocr"]).describe()


@pytest.mark.parametrize("value", ["ocr=lots", "printing=5", "-1", "ocr:5"])
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
    backend = own_backend("rabbitmq", CONVEYOR_WORKER_MAX_MEMORY_MB="default=200")
    backend.start_worker(concurrency=1)
    wait_for_worker(backend)

    pids = run_leaks(backend, 12, mb=40)

    assert len(set(pids)) >= 3, f"pool processes seen: {sorted(set(pids))}"


@pytest.mark.e2e
def test_a_pool_process_is_replaced_after_its_job_count_and_the_worker_says_so_at_start(
    own_backend: Callable[..., Backend],
) -> None:
    backend = own_backend("embedded", CONVEYOR_WORKER_MAX_TASKS_PER_CHILD="2")
    backend.start_worker(concurrency=1)
    wait_for_worker(backend)

    pids = run_leaks(backend, 6, mb=0)

    assert len(set(pids)) >= 3
    log = "".join(path.read_text() for path in backend.settings.data_dir.glob("*.log"))
    for line in (
        "queues: default, imports, maintenance, ocr",
        "concurrency: 1 prefork",
        "prefetch: 4 a process",
    ):
        assert line in log
    assert "recycling: a pool process is replaced after 2 jobs, or once a job leaves it above 512 MB" in log
