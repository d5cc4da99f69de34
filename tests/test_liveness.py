"""Beat and relay show they are alive to their container's healthcheck, `conveyor doctor --check`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from jobs.observability.liveness import STALE_AFTER_S, age_s
from tests.support import Backend, conveyor, wait_until


@pytest.mark.parametrize("component", ["relay", "beat"])
def test_a_running_loop_passes_its_check_and_a_stale_one_fails(
    own_backend: Callable[..., Backend], component: str
) -> None:
    backend = own_backend("embedded")
    assert conveyor(backend, "doctor", "--check", component).returncode == 1  # never ran here
    process = backend.spawn("-m", "jobs.cli", component)
    try:
        wait_until(
            lambda: age_s(backend.settings, component) is not None, 60, f"{component} to touch its file"
        )
        done = conveyor(backend, "doctor", "--check", component)
        assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stderr
    finally:
        process.terminate()
        process.wait(30)
    stale = time.time() - STALE_AFTER_S - 1
    os.utime(backend.settings.data_dir / "liveness" / component, (stale, stale))
    done = conveyor(backend, "doctor", "--check", component)
    assert done.returncode == 1 and "last turned here" in done.stderr
