"""The deployment files, checked by parsing: no Docker engine is needed."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
README = ROOT / "README.md"
INFRASTRUCTURE = {"postgres", "rabbitmq", "redis", "seaweedfs"}
CREDENTIALS_ENV = {"S3_ACCESS_KEY": "key", "S3_SECRET_KEY": "secret", "CONVEYOR_FLOWER_BASIC_AUTH": "u:p"}


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def app_services(services: dict) -> dict:
    return {name: spec for name, spec in services.items() if "build" in spec}


def _dependencies(spec: dict) -> dict:
    """``depends_on`` as a mapping, whether written as a list or in long form."""
    depends_on = spec.get("depends_on", {})
    return {name: {} for name in depends_on} if isinstance(depends_on, list) else depends_on


def _published_ports(spec: dict) -> set[str]:
    return {str(port).rsplit(":", 1)[-1] for port in spec.get("ports", [])}


def test_every_service_named_in_depends_on_exists(services: dict) -> None:
    for name, spec in services.items():
        missing = set(_dependencies(spec)) - set(services)
        assert not missing, f"{name} depends on undefined services {missing}"


def test_every_service_waited_on_as_healthy_has_a_healthcheck(services: dict) -> None:
    for name, spec in services.items():
        for dependency, options in _dependencies(spec).items():
            if options.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"


def test_every_app_service_runs_a_conveyor_command(app_services: dict) -> None:
    from jobs.cli.main import main

    assert set(app_services) >= {"migrate", "api", "worker", "beat", "relay", "flower"}
    for name, spec in app_services.items():
        command = spec["command"]
        argv = shlex.split(command) if isinstance(command, str) else command
        assert argv[0] == "conveyor", f"{name} runs {argv[0]!r}"
        assert argv[1] in main.commands, f"{name} runs unknown subcommand {argv[1]!r}"


def test_the_infrastructure_services_have_healthchecks(services: dict) -> None:
    for name in INFRASTRUCTURE:
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"


def test_the_api_publishes_port_8000(services: dict) -> None:
    assert "8000" in _published_ports(services["api"])


def test_migrations_run_once_before_the_app_starts(services: dict) -> None:
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "beat", "relay"):
        condition = _dependencies(services[name])["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_every_conveyor_variable_in_the_deployment_files_is_documented() -> None:
    assert README.exists(), "README.md is missing: it must hold the settings table"
    readme = README.read_text()
    used = set(re.findall(r"CONVEYOR_[A-Z0-9_]+", COMPOSE_FILE.read_text() + DOCKERFILE.read_text()))
    undocumented = sorted(name for name in used if f"`{name}`" not in readme)
    assert not undocumented, f"README.md does not document {undocumented}"


def test_the_image_is_python_3_11_or_newer_with_tesseract() -> None:
    dockerfile = DOCKERFILE.read_text()
    base = re.search(r"^FROM\s+python:3\.(\d+)", dockerfile, re.MULTILINE)
    assert base and int(base.group(1)) >= 11, "the base image must be python:3.11 or newer"
    assert re.search(r"apt-get install[^\n]*\btesseract-ocr\b", dockerfile)


def test_the_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose config -q`` (v1, from Debian), which parses and checks without an engine."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose (v1) is missing: `bash .ci/services.sh` installs it")
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIALS_ENV}
    argv = ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"]
    return subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


def test_the_compose_file_is_valid_once_the_credentials_are_set() -> None:
    done = _compose_config(CREDENTIALS_ENV)
    assert done.returncode == 0, done.stderr


def test_the_compose_stack_has_no_default_s3_credentials() -> None:
    done = _compose_config({"CONVEYOR_FLOWER_BASIC_AUTH": "u:p"})
    assert done.returncode != 0
    assert "S3_ACCESS_KEY" in done.stderr


def test_the_app_waits_for_its_bucket_and_keeps_files_in_s3(services: dict) -> None:
    assert "s3data:/data" in services["seaweedfs"]["volumes"]
    for name in ("api", "worker", "worker-long", "ocr-worker", "beat", "relay"):
        condition = _dependencies(services[name])["storage-init"]["condition"]
        assert condition == "service_completed_successfully", name
    assert services["api"]["environment"]["CONVEYOR_STORAGE_URL"].startswith("s3://")


def test_ocr_has_workers_of_its_own_and_the_image_its_language_packs(services: dict) -> None:
    def argv(name: str) -> list[str]:
        command = services[name]["command"]
        return shlex.split(command) if isinstance(command, str) else list(command)

    assert argv("ocr-worker") == ["conveyor", "worker", "--queues", "ocr"]
    assert "ocr" not in argv("worker-long")[-1].split(",")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert all(f"tesseract-ocr-{pack}" in dockerfile for pack in ("eng", "deu", "chi-sim"))


def test_the_image_has_the_pg_dump_of_the_stacks_postgresql_major() -> None:
    server = re.search(r"image: postgres:(\d+)", (ROOT / "docker-compose.yml").read_text())
    assert server is not None
    assert f"postgresql-client-{server[1]} " in (ROOT / "deploy" / "Dockerfile").read_text()
