"""The API answers as its OpenAPI document says: Schemathesis, with every check, against the app
on the embedded default (SQLite). A client tested here sees the same answers in production, as
the tests of each backend's errors check on PostgreSQL too.

Exceptions the document cannot express live in ``schemathesis.toml``, each with why.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import create_app
from tests.support import ROOT, Backend, serving

SEED = "20261201"  # a fixed seed: the same cases every run, so a failure reproduces
EXAMPLES = "100"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The API on a loopback port, and an admin token for it."""
    backend = Backend.create("embedded", tmp_path)
    try:
        with serving(create_app(backend.settings)) as url:
            yield url, backend.token("admin")
    finally:
        backend.stop()


def test_every_operation_answers_as_the_openapi_document_says(served: tuple[str, str]) -> None:
    url, token = served
    argv = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--checks", "all"]
    argv += ["-H", f"Authorization: Bearer {token}", "-n", EXAMPLES, "--seed", SEED, "--continue-on-failure"]
    argv += ["--generation-database", "none"]  # no examples carried over from earlier runs
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)

    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
