"""The ``conveyor`` command, run as a real process on the embedded backend."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from api import create_app
from tests.services import free_port
from tests.support import ROOT, Backend, auth, conveyor, stop_process, wait_until


def assert_fails_clearly(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0, done.stdout
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_tokens_create_prints_only_a_token_that_authenticates(embedded: Backend) -> None:
    done = conveyor(embedded, "tokens", "create", "--scopes", "jobs:read,jobs:write")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvr_"), done.stdout
    client = create_app(embedded.settings).test_client()
    assert client.get("/v1/jobs", headers=auth(lines[0])).status_code == 200


def test_tokens_create_refuses_an_unknown_scope_with_a_message(embedded: Backend) -> None:
    done = conveyor(embedded, "tokens", "create", "--scopes", "jobs:read,root")

    assert_fails_clearly(done, "root")
    assert done.stdout == ""


def test_submit_and_wait_prints_the_finished_job_and_exits_zero(embedded: Backend) -> None:
    embedded.start_worker()
    embedded.start_relay()

    done = conveyor(embedded, "submit", "echo", "--payload", '{"a":1}', "--wait", "--timeout", "90")

    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "succeeded"
    assert job["result"] == {"a": 1}


def test_submit_and_wait_without_a_relay_says_the_job_was_never_published(embedded: Backend) -> None:
    done = conveyor(embedded, "submit", "echo", "--wait", "--timeout", "1")

    assert_fails_clearly(done, "conveyor relay")


def test_submit_and_wait_exits_one_when_the_job_fails(embedded: Backend) -> None:
    embedded.start_worker()
    embedded.start_relay()

    done = conveyor(
        embedded, "submit", "fail", "--payload", '{"permanent":true}', "--wait", "--timeout", "90"
    )

    assert done.returncode == 1, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "dead"
    assert job["error"]["type"] == "PermanentError"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "nope"], "Unknown job type 'nope'"),
        (["submit", "echo", "--payload", "{bad"], "not JSON"),
        (["jobs", "show", "not-a-uuid"], "job ids are UUIDs"),
        (["jobs", "show", "5c1d1f0e-0000-4000-8000-000000000000"], "No job with id"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message_and_no_traceback(
    embedded: Backend, args: list[str], message: str
) -> None:
    assert_fails_clearly(conveyor(embedded, *args), message)


def test_jobs_list_and_show_find_submitted_jobs(embedded: Backend) -> None:
    ids = [conveyor(embedded, "submit", "echo", "--payload", f'{{"n":{n}}}').stdout.strip() for n in (1, 2)]
    assert all(uuid.UUID(job_id) for job_id in ids)

    table = conveyor(embedded, "jobs", "list")
    listed = conveyor(embedded, "jobs", "list", "--json")
    shown = conveyor(embedded, "jobs", "show", ids[0])

    assert table.returncode == 0 and all(job_id in table.stdout for job_id in ids), table.stdout
    assert {job["id"] for job in json.loads(listed.stdout)} == set(ids)
    assert json.loads(shown.stdout)["id"] == ids[0]
    assert json.loads(shown.stdout)["payload"] == {"n": 1}


@dataclass
class DevPlatform:
    process: subprocess.Popen[bytes]
    api_url: str
    flower_url: str
    data_dir: Path


@pytest.fixture(params=["embedded", "rabbitmq", "redis"])
def dev_platform(
    request: pytest.FixtureRequest, tmp_path: Path, own_backend: Callable[..., Backend]
) -> Iterator[DevPlatform]:
    """``conveyor dev`` in its own session, on free ports, with a data folder that does not exist
    yet, on the backend's database and broker as a newcomer would set them."""
    backend = own_backend(request.param)
    api_port, flower_port = free_port(), free_port()
    data_dir = tmp_path / "fresh" / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env |= {k: v for k, v in backend.env.items() if k in ("CONVEYOR_DATABASE_URL", "CONVEYOR_BROKER_URL")}
    env |= {
        "CONVEYOR_DATA_DIR": str(data_dir),
        "CONVEYOR_API_PORT": str(api_port),
        "CONVEYOR_FLOWER_PORT": str(flower_port),
    }
    with open(tmp_path / "dev.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "dev"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api_url, flower_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}"
    try:
        yield DevPlatform(process, api_url, flower_url, data_dir)
    finally:
        stop_process(process, timeout=30)


def get_ok(url: str, headers: dict[str, str] | None = None) -> requests.Response | None:
    """The response if the server answered 2xx, else None (not up yet, or not ready)."""
    try:
        response = requests.get(url, headers=headers, timeout=2)
    except requests.RequestException:
        return None
    return response if response.ok else None


def test_dev_runs_the_whole_platform_and_stops_on_sigterm(dev_platform: DevPlatform) -> None:
    api = dev_platform.api_url
    wait_until(lambda: get_ok(f"{api}/health/ready"), 90, "the dev API to be ready")
    headers = auth((dev_platform.data_dir / "dev-token").read_text().strip())

    created = requests.post(
        f"{api}/v1/jobs", json={"type": "echo", "payload": {"hi": 1}}, headers=headers, timeout=10
    )
    assert created.status_code == 202, created.text
    job_url = f"{api}/v1/jobs/{created.json()['id']}"
    job = wait_until(
        lambda: (r := get_ok(job_url, headers)) is not None and r.json()["state"] == "succeeded" and r.json(),
        90,
        "the echo job to succeed",
    )
    assert job["result"] == {"hi": 1}
    too_long = requests.get(f"{api}/v1/jobs?type={'t' * 9000}", headers=headers, timeout=10)
    assert (too_long.status_code, too_long.json()["code"]) == (414, 414)  # gunicorn's own page is HTML
    wait_until(lambda: get_ok(f"{dev_platform.flower_url}/healthcheck"), 60, "Flower to answer")
    user, _, password = (dev_platform.data_dir / "flower-login").read_text().strip().partition(":")
    assert requests.get(f"{dev_platform.flower_url}/api/workers", timeout=10).status_code == 401
    assert requests.get(f"{dev_platform.flower_url}/api/workers", auth=(user, password), timeout=10).ok
    assert_private(dev_platform.data_dir)

    os.killpg(dev_platform.process.pid, signal.SIGTERM)

    dev_platform.process.wait(timeout=30)


def assert_private(data_dir: Path) -> None:
    """What ``conveyor dev`` keeps is readable by its user only, from the moment it exists."""
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("dev-token", "flower-login", "conveyor.db"):
        if (data_dir / name).exists() or name != "conveyor.db":
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name


def test_jobs_cancel_and_retry_do_what_the_api_does(embedded: Backend) -> None:
    job_id = conveyor(embedded, "submit", "echo").stdout.strip()

    cancelled = conveyor(embedded, "jobs", "cancel", job_id)
    again = conveyor(embedded, "jobs", "cancel", job_id)
    retried = conveyor(embedded, "jobs", "retry", job_id)

    assert json.loads(cancelled.stdout)["state"] == "cancelled", cancelled.stderr
    assert_fails_clearly(again, "already cancelled")
    assert json.loads(retried.stdout)["state"] == "queued", retried.stderr


def test_job_types_lists_every_type_and_its_payload_schema(embedded: Backend) -> None:
    table = conveyor(embedded, "job-types")
    listed = json.loads(conveyor(embedded, "job-types", "--json").stdout)

    assert all(name in table.stdout for name in ("echo", "sleep", "fail", "crash"))
    assert {t["name"]: t["payload_schema"]["required"] for t in listed if t["name"] == "sleep"} == {
        "sleep": ["ms"]
    }
