"""The deployment files, checked by parsing, then by a real compose parser: Debian's
docker-compose 1.29 (`config -q`) needs no engine. What it cannot check: that the images pull and
the build succeeds, that each healthcheck's command works inside its container, the runtime
expansion of ``$$HOSTNAME``, and compose v2's own extensions (none is used: the file keeps to
what both read, so no variable is nested in another's default)."""

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
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
INFRASTRUCTURE = {"postgres", "rabbitmq", "valkey", "seaweedfs"}
ONE_SHOT = {"migrate", "storage-init"}
PUBLISHED = {"api": "8000", "flower": "5555", "grafana": "3000"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|AUTH|DSN|TOKEN", re.IGNORECASE)
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")


def _compose_text() -> str:
    return COMPOSE_FILE.read_text()


REQUIRED_SECRETS = sorted(set(REQUIRED.findall(_compose_text())))
FILLED_IN = {name: "x" * 12 for name in REQUIRED_SECRETS} | {"CONVEYOR_FLOWER_BASIC_AUTH": "ops:x"}


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(_compose_text())["services"]


@pytest.fixture(scope="module")
def app_services(services: dict) -> dict:
    return {name: spec for name, spec in services.items() if "build" in spec}


def _dependencies(spec: dict) -> dict:
    """``depends_on`` as a mapping, whether written as a list or in long form."""
    depends_on = spec.get("depends_on", {})
    return {name: {} for name in depends_on} if isinstance(depends_on, list) else depends_on


def _argv(spec: dict) -> list[str]:
    command = spec["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_every_service_named_in_depends_on_exists(services: dict) -> None:
    for name, spec in services.items():
        missing = set(_dependencies(spec)) - set(services)
        assert not missing, f"{name} depends on undefined services {missing}"


def test_every_long_running_service_has_a_healthcheck(services: dict) -> None:
    for name, spec in services.items():
        if name not in ONE_SHOT:
            assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    tests = {
        name: " ".join(map(str, services[name]["healthcheck"]["test"]))
        for name in services
        if name not in ONE_SHOT
    }
    assert "pg_isready" in tests["postgres"] and "rabbitmq-diagnostics -q ping" in tests["rabbitmq"]
    assert (
        "valkey-cli" in tests["valkey"] and "8333" in tests["seaweedfs"] and "/health/ready" in tests["api"]
    )
    for worker in ("worker", "imports-worker", "ocr-worker"):
        queues = _argv(services[worker])[-1].replace(",", "-")
        assert f"inspect ping --timeout 5 -d {queues}@$$HOSTNAME" in tests[worker], worker
    for component in ("beat", "relay"):
        assert tests[component].endswith(f"conveyor doctor --check {component}"), component


def test_every_app_service_runs_a_conveyor_command_of_one_image(app_services: dict) -> None:
    from jobs.cli.main import main

    expected = {"migrate", "api", "worker", "imports-worker", "ocr-worker", "beat", "relay", "flower"}
    assert set(app_services) == expected
    for name, spec in app_services.items():
        argv = _argv(spec)
        assert argv[0] == "conveyor", f"{name} runs {argv[0]!r}"
        assert argv[1] in main.commands, f"{name} runs unknown subcommand {argv[1]!r}"
    assert len({(str(spec["build"]), spec["image"]) for spec in app_services.values()}) == 1


def test_the_workers_split_the_queues_as_documented(services: dict) -> None:
    from jobs.broker.queues import QUEUES

    queues = {name: _argv(services[name])[-1] for name in ("worker", "imports-worker", "ocr-worker")}
    assert queues == {"worker": "default,maintenance", "imports-worker": "imports", "ocr-worker": "ocr"}
    assert sorted(q for each in queues.values() for q in each.split(",")) == sorted(QUEUES)


def test_each_worker_is_pid_1_and_has_a_grace_period_for_its_queues_jobs(services: dict) -> None:
    """Compose runs a string command in exec form, and the image has no entrypoint: `conveyor
    worker` is PID 1 and execs Celery, so Docker's SIGTERM reaches the worker's main process."""
    graces = {
        name: services[name].get("stop_grace_period") for name in ("worker", "imports-worker", "ocr-worker")
    }

    assert graces == {"worker": "10m", "imports-worker": "10m", "ocr-worker": "2m"}
    assert not re.search(r"^ENTRYPOINT", DOCKERFILE.read_text(), re.MULTILINE)
    assert all(_argv(services[name])[:2] == ["conveyor", "worker"] for name in graces)


def test_migrations_run_once_before_everything_else_of_the_app(app_services: dict) -> None:
    assert app_services["migrate"]["restart"] == "no"
    for name, spec in app_services.items():
        if name != "migrate":
            condition = _dependencies(spec)["migrate"]["condition"]
            assert condition == "service_completed_successfully", name


def test_only_the_api_flower_and_grafana_publish_ports_and_on_loopback_by_default(services: dict) -> None:
    published = {name: spec["ports"] for name, spec in services.items() if spec.get("ports")}
    assert set(published) == set(PUBLISHED)
    for name, ports in published.items():
        assert ports == [f"${{CONVEYOR_PUBLISH_HOST:-127.0.0.1}}:{PUBLISHED[name]}:{PUBLISHED[name]}"]


def test_no_secret_has_a_literal_value(services: dict) -> None:
    for name, spec in services.items():
        environment = spec.get("environment", {})
        for variable, value in environment.items():
            if SECRET_NAME.search(variable):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:[?-][^}]*\}", str(value)), f"{name}: {variable}={value}"
            assert not re.search(r"://[^/@\s]*:[^/@\s$]+@", str(value)), (
                f"{name}: {variable} holds a password"
            )
    assert "guest" not in yaml.safe_dump(services)  # RabbitMQ's default user
    assert "--requirepass" in " ".join(_argv(services["valkey"]))


def test_every_required_secret_is_listed_empty_in_the_env_example() -> None:
    listed = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert set(REQUIRED_SECRETS) <= set(listed), set(REQUIRED_SECRETS) - set(listed)
    assert all(listed[name] == "" for name in REQUIRED_SECRETS)
    assert "openssl rand" in ENV_EXAMPLE.read_text()


def test_valkey_is_a_profile_with_the_brokers_password(services: dict) -> None:
    assert services["valkey"]["profiles"] == ["valkey"]
    assert "CONVEYOR_BROKER_PASSWORD" in services["valkey"]["environment"]["VALKEY_PASSWORD"]


def test_every_conveyor_variable_in_the_deployment_files_is_documented() -> None:
    readme = README.read_text()
    deployment = _compose_text() + DOCKERFILE.read_text() + ENV_EXAMPLE.read_text()
    used = set(re.findall(r"CONVEYOR_[A-Z0-9_]+", deployment))
    undocumented = sorted(name for name in used if f"`{name}`" not in readme)
    assert not undocumented, f"README.md does not document {undocumented}"


def test_the_image_is_built_in_two_stages_runs_as_a_user_and_checks_its_health() -> None:
    dockerfile = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+python:3\.(\d+)", dockerfile, re.MULTILINE)
    assert len(bases) == 2 and all(int(minor) >= 11 for minor in bases)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/health/ready", dockerfile, re.MULTILINE)
    assert re.search(r"apt-get install[^\n]*\btesseract-ocr\b", dockerfile)
    assert all(f"tesseract-ocr-{pack}" in dockerfile for pack in ("eng", "deu", "chi-sim"))


def test_the_image_has_the_pg_dump_of_the_stacks_postgresql_major() -> None:
    server = re.search(r"image: postgres:(\d+)", _compose_text())
    assert server is not None
    assert f"postgresql-client-{server[1]} " in DOCKERFILE.read_text()


def test_the_app_waits_for_its_bucket_and_keeps_files_in_s3(app_services: dict, services: dict) -> None:
    assert "s3data:/data" in services["seaweedfs"]["volumes"]
    for name, spec in app_services.items():
        if name != "migrate":
            assert _dependencies(spec)["storage-init"]["condition"] == "service_completed_successfully", name
    assert services["api"]["environment"]["CONVEYOR_STORAGE_URL"].startswith("s3://")


def _compose_config(env: dict[str, str], *profiles: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose (v1) is missing: `bash .ci/services.sh` installs it")
    base = {k: v for k, v in os.environ.items() if k not in FILLED_IN}
    argv = ["docker-compose", "-f", str(COMPOSE_FILE), *(f"--profile={p}" for p in profiles), "config", "-q"]
    return subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("profiles", [(), ("valkey",)], ids=["rabbitmq", "valkey"])
def test_the_compose_file_is_valid_once_the_secrets_are_set(profiles: tuple[str, ...]) -> None:
    done = _compose_config(FILLED_IN, *profiles)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_the_stack_refuses_to_start_without_each_secret(secret: str) -> None:
    done = _compose_config({name: value for name, value in FILLED_IN.items() if name != secret})
    assert done.returncode != 0 and secret in done.stderr
