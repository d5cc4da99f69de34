"""Static wiring: settings parsing, the type catalogue, handlers, beat and the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.catalogue import JOB_TYPES
from jobs.scheduler.entries import CATCH_UP, schedules
from jobs.settings import SettingsError, load_settings
from schedules.beat import SCHEDULE
from tasks import HANDLERS
from workers.app import make_celery

ROOT = Path(__file__).resolve().parent.parent


def test_valkey_urls_are_handed_to_kombu_as_redis_urls() -> None:
    assert load_settings({"CONVEYOR_BROKER_URL": "valkey://h:6379/0"}).broker_url == "redis://h:6379/0"
    assert load_settings({"CONVEYOR_BROKER_URL": "valkeys://h:6380/1"}).broker_url == "rediss://h:6380/1"


def test_embedded_default_needs_no_service(tmp_path: Path) -> None:
    settings = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'conveyor.db'}"
    assert settings.is_embedded_broker


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONVEYOR_BROKER_URL", "kafka://x"),
        ("CONVEYOR_DATABASE_URL", "mysql://x"),
        ("CONVEYOR_DEFAULT_MAX_ATTEMPTS", "0"),
        ("CONVEYOR_API_PORT", "eighty"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_every_job_type_has_a_handler_and_every_handler_a_type() -> None:
    assert set(JOB_TYPES) == set(HANDLERS)


def test_every_job_type_names_a_registered_task_and_every_schedule_a_job_type(tmp_path: Path) -> None:
    app = make_celery(load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)}))
    assert {jt.task_name for jt in JOB_TYPES.values()} <= set(app.tasks)
    assert {entry.job_type for entry in SCHEDULE.values()} <= set(JOB_TYPES)
    assert all(entry.catch_up in CATCH_UP for entry in SCHEDULE.values())


def test_the_offsite_sync_runs_only_once_its_destination_is_set(tmp_path: Path) -> None:
    plain = load_settings({"CONVEYOR_DATA_DIR": str(tmp_path)})
    offsite = load_settings(
        {"CONVEYOR_DATA_DIR": str(tmp_path), "CONVEYOR_OFFSITE_SYNC_URL": "s3://offsite/x"}
    )
    assert schedules(plain)["offsite-sync"].off == "needs CONVEYOR_OFFSITE_SYNC_URL"
    assert schedules(offsite)["offsite-sync"].off is None
    assert schedules(offsite)["offsite-sync"].payload(offsite)["destination"] == "s3://offsite/x"


def test_every_setting_is_documented_in_the_readme() -> None:
    source = (ROOT / "jobs" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()
    variables = set(re.findall(r'"(CONVEYOR_[A-Z_]+)"', source))
    assert variables
    documented = {v for v in variables if f"`{v}`" in readme or f"`{v}<NAME>`" in readme}
    assert sorted(variables - documented) == []
