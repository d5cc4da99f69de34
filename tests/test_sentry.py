"""What reaches Sentry carries no secret: a process reports a real error to a loopback server
posing as Sentry, and the planted payload, token, password and AWS key never arrive."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import ROOT

SECRETS = {
    "payload": "4111-1111-1111-1111",
    "token": "cvr_PlantedTokenThatMustNotLeak123",
    "password": "hunter2-planted",
    "aws": "AKIAPLANTEDKEY123456",
}
REPORTER = f"""
import logging, sentry_sdk
from jobs.observability import start_process
from jobs.settings import load_settings
import os
start_process("test", load_settings())

def run_job(payload, token):
    database_url = "postgresql://conveyor:{SECRETS["password"]}@db.internal/conveyor"
    aws = "{SECRETS["aws"]}"
    logging.getLogger("jobs").warning("Connecting to %s with %s", database_url, token)
    raise RuntimeError(f"PlantedError: {{database_url}} rejected {{token}} for {{aws}}")

try:
    run_job({{"card": "{SECRETS["payload"]}"}}, "{SECRETS["token"]}")
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"""


class Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        Collector.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[str]:
    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://public@127.0.0.1:{server.server_port}/1"
    finally:
        server.shutdown()


def test_an_error_reported_to_sentry_carries_none_of_the_planted_secrets(
    sentry_server: str, tmp_path: object
) -> None:
    env = {"PATH": "/usr/bin:/bin", "CONVEYOR_SENTRY_DSN": sentry_server, "CONVEYOR_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", REPORTER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    sent = b"".join(Collector.received).decode("utf-8", "replace")
    assert "PlantedError" in sent, "no event reached the server"
    assert "run_job" in sent, "the event lost its stack trace"
    leaked = [name for name, secret in SECRETS.items() if secret in sent]
    assert not leaked, f"{leaked} reached Sentry"
