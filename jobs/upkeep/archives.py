"""A stored dump read back: checked against its sha256 while ``pg_restore --list`` parses it,
downloaded to a file, or restored into a database."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from jobs.storage import Reader, Storage
from jobs.upkeep.digests import Digest, Told
from jobs.upkeep.postgres import Database, UpkeepError, tool_failed

CHUNK = 1024 * 1024
WAIT_STEP_S = 1.0


class Reading(Digest):
    """Read a stored object in chunks, hashing and counting them, telling ``told`` as it goes."""

    def __init__(self, reader: Reader, told: Told):
        super().__init__(told)
        self.reader = reader

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self.reader.read(CHUNK):
                yield self.add(chunk)
        finally:
            self.reader.close()


def check_archive(storage: Storage, key: str, sha256: str, pg_restore: str, told: Told) -> str | None:
    """Why the stored object is not the dump recorded, or None if it is: its bytes must hash to
    ``sha256`` and ``pg_restore --list`` must parse them. The bytes stream through, never
    stored; pg_restore stops reading after the table of contents, the hash reads on."""
    reading = Reading(storage.open(key), told)
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [pg_restore, "--list"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            _feed(process.stdin, reading.chunks())
        finally:
            returncode = process.wait()
        if reading.sha256 != sha256:
            return f"its sha256 is {reading.sha256}, not {sha256} as recorded ({reading.size} bytes read)"
        if returncode != 0:
            stderr.seek(0)
            said = " ".join(stderr.read().decode(errors="replace").split())[-600:]
            return f"pg_restore --list could not read it (exit code {returncode}): {said}"
    return None


def _feed(stdin: IO[bytes] | None, chunks: Iterator[bytes]) -> None:
    assert stdin is not None
    with stdin:
        for chunk in chunks:
            if not stdin.closed:
                try:
                    stdin.write(chunk)
                except BrokenPipeError:
                    stdin.close()


def download(storage: Storage, key: str, sha256: str, folder: Path, told: Told) -> Path:
    """The stored object in a temporary file under ``folder``, its sha256 checked; the caller
    removes the file. A mismatch removes it and raises."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="conveyor-restore-", suffix=".dump", dir=folder)
    path = Path(name)
    try:
        reading = Reading(storage.open(key), told)
        with open(descriptor, "wb") as file:
            for chunk in reading.chunks():
                file.write(chunk)
        if reading.sha256 != sha256:
            raise UpkeepError(f"{storage.url_of(key)} has sha256 {reading.sha256}, not {sha256} as recorded.")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def downloaded(storage: Storage, key: str, sha256: str, folder: Path, told: Told) -> Iterator[Path]:
    """``download``, removed when the block ends however it ends."""
    path = download(storage, key, sha256, folder, told)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def restore(pg_restore: str, archive: Path, into: Database, waited: Told) -> None:
    """``pg_restore --jobs 2 --no-owner`` of ``archive`` into the existing database ``into``;
    ``waited`` is told the seconds so far each second, and may raise to stop it (it is killed)."""
    command = [
        pg_restore,
        "--jobs=2",
        "--no-owner",
        "--exit-on-error",
        "--no-password",
        f"--dbname={into.url}",
        str(archive),
    ]
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=into.env())
        try:
            while not _exited(process):
                waited(int(time.monotonic() - started))
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        if process.returncode != 0:
            stderr.seek(0)
            raise tool_failed(
                "pg_restore", process.returncode, stderr.read().decode(errors="replace"), into.url
            )


def _exited(process: subprocess.Popen[bytes]) -> bool:
    try:
        process.wait(WAIT_STEP_S)
    except subprocess.TimeoutExpired:
        return False
    return True
