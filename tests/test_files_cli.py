"""``conveyor files``: upload, list, download and remove, as an operator would at a shell."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from jobs import files
from tests.support import ROOT, Backend, conveyor


def upload(embedded: Backend, path: Path, *extra: str) -> dict[str, object]:
    done = conveyor(embedded, "files", "upload", str(path), "--json", *extra)
    assert done.returncode == 0, done.stderr
    record: dict[str, object] = json.loads(done.stdout)
    return record


def test_a_file_uploaded_lists_downloads_whole_and_is_removed(embedded: Backend, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    (tmp_path / "scan.png").write_bytes(data)
    record = upload(embedded, tmp_path / "scan.png")
    assert (record["name"], record["content_type"], record["size"]) == ("scan.png", "image/png", len(data))
    assert record["sha256"] == hashlib.sha256(data).hexdigest()

    listed = conveyor(embedded, "files", "list")
    assert str(record["id"]) in listed.stdout and "scan.png" in listed.stdout
    out = tmp_path / "back.png"
    done = conveyor(embedded, "files", "download", str(record["id"]), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == data

    again = conveyor(embedded, "files", "download", str(record["id"]), "-o", str(out))
    assert again.returncode == 1 and "--force" in again.stderr
    assert conveyor(embedded, "files", "rm", str(record["id"])).returncode == 0
    gone = conveyor(embedded, "files", "download", str(record["id"]), "-o", str(tmp_path / "x"))
    assert gone.returncode == 1 and "No file has id" in gone.stderr and "Traceback" not in gone.stderr


def test_standard_input_is_uploaded_under_the_name_given(embedded: Backend) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "files", "upload", "-", "--name", "rows.csv"],
        cwd=ROOT, env=embedded.process_env(), input=b"a,b\n1,2\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with embedded.sessions() as session:
        row = files.get(session, uuid.UUID(done.stdout.decode().strip()))
        assert (row.name, row.size, row.content_type) == ("rows.csv", 8, "text/csv")


def test_an_upload_past_the_limit_fails_with_a_message_and_keeps_nothing(
    embedded: Backend, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 5000)
    done = conveyor(embedded, "files", "upload", str(tmp_path / "big.bin"), CONVEYOR_MAX_UPLOAD_BYTES="1000")
    assert done.returncode == 1 and "larger than the limit" in done.stderr and "Traceback" not in done.stderr
    assert "big.bin" not in conveyor(embedded, "files", "list").stdout


def test_a_download_to_a_folder_that_does_not_exist_fails_with_a_message(
    embedded: Backend, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    record = upload(embedded, tmp_path / "a.txt")
    done = conveyor(
        embedded, "files", "download", str(record["id"]), "-o", str(tmp_path / "missing" / "a.txt")
    )
    assert done.returncode == 1 and "Cannot write" in done.stderr and "Traceback" not in done.stderr
