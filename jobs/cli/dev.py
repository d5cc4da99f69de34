"""``conveyor dev``: the whole platform on this machine, in one command."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from jobs import tokens
from jobs.broker.queues import LONG_QUEUES
from jobs.cli.support import Context, pass_context
from jobs.migrate import upgrade
from jobs.settings import ensure_data_dir, write_secret

STOP_WAIT_S = 12.0
# Two workers, so that short jobs never wait behind long ones, and long ones reserve nothing ahead.
PROCESSES = {
    "api": ("api",),
    "worker": ("worker", "--queues", "default"),
    "long-job worker": ("worker", "--queues", ",".join(LONG_QUEUES)),
    "beat": ("beat",),
    "relay": ("relay",),
    "flower": ("flower",),
}


@click.command()
@click.option("--port", type=int, help="API port (default: CONVEYOR_API_PORT)")
@pass_context
def dev(ctx: Context, port: int | None) -> None:
    """Migrate, then run the API, a worker, beat, the relay and Flower until Ctrl-C."""
    settings = ctx.settings
    ensure_data_dir(settings)
    upgrade(settings)
    token = _dev_token(ctx)
    flower_login = settings.flower_basic_auth or _dev_secret(settings.data_dir / "flower-login", _new_login)
    api_url = f"http://{settings.api_host}:{port or settings.api_port}"
    # Flower runs here, so the workers send task events from their start: it shows every job.
    env = {"CONVEYOR_TASK_EVENTS": "always", **os.environ, "CONVEYOR_FLOWER_BASIC_AUTH": flower_login}
    children = {name: _spawn(command, port, env) for name, command in PROCESSES.items()}
    user, _, password = flower_login.partition(":")
    click.echo(
        f"Conveyor is up: API {api_url}/docs, ops console {api_url}/ops,"
        f" Flower http://{settings.flower_host}:{settings.flower_port}"
        f" (user {user}, password {password})"
    )
    example = shlex.quote(json.dumps({"type": "echo", "payload": {"hello": "world"}}))
    click.echo(
        f"Submit a first job: curl -s -X POST {api_url}/v1/jobs -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d {example}"
    )
    click.echo(f"  or: conveyor submit echo --payload {shlex.quote(json.dumps({'hello': 'world'}))} --wait")
    sys.exit(_supervise(children))


def _dev_token(ctx: Context) -> str:
    """An admin token for this machine, kept in the data folder so it survives restarts."""
    path = ctx.settings.data_dir / "dev-token"
    sessions = ctx.sessions
    if path.exists():
        token = path.read_text().strip()
        with sessions() as session:
            if tokens.authenticate(session, token) is not None:
                return token
    with sessions.begin() as session:
        token = tokens.create_token(session, "dev", ["admin"])
    write_secret(path, token + "\n")
    return token


def _dev_secret(path: Path, make: Callable[[], str]) -> str:
    """A secret for this machine, kept (readable by this user only) so it survives restarts."""
    if not path.exists():
        write_secret(path, make() + "\n")
    return path.read_text().strip()


def _new_login() -> str:
    return f"conveyor:{secrets.token_urlsafe(18)}"


def _spawn(command: tuple[str, ...], port: int | None, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "jobs.cli", *command]
    if command[0] == "api" and port:
        argv += ["--port", str(port)]
    return subprocess.Popen(argv, env=env)


def _supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait until Ctrl-C or until one process dies; then stop them all."""
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                click.echo(f"conveyor dev: {name} exited with {child.returncode}; stopping.", err=True)
                code, stopping = 1, True
        time.sleep(0.5)
    _stop_all(children.values())
    return code


def _stop_all(children: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then SIGKILL those still running ``STOP_WAIT_S`` later: one
    deadline for them all, so a slow one does not make the others wait their turn."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_WAIT_S
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
