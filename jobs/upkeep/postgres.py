"""PostgreSQL as the backups meet it: libpq URLs, the client binaries that match a server, the
connections, and each failure classified once as passing (retry) or not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import URL, make_url

from jobs.errors import ConveyorError

CONNECT_TIMEOUT_S = 10
# What libpq says when the server itself answered no: waiting cannot change these.
REFUSALS = (
    "password authentication failed",
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "must be owner",
    "no password supplied",
    "invalid",
)
# What libpq says when the server or the link went away mid-work: the next attempt may pass.
PASSING = (
    "connection to server",
    "server closed the connection unexpectedly",
    "terminating connection",
    "ssl syscall error",
    "conflict with recovery",
    "the database system is starting up",
    "the database system is shutting down",
)
VERSION = re.compile(r"\)\s+(\d+)(?:\.(\d+))?")


class UpkeepError(ConveyorError):
    """A backup, verification, restore or drill step failed; the message names what failed.
    ``retriable`` says, as for a StorageError, whether the same step may succeed later."""

    def __init__(self, message: str, *, retriable: bool = False):
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database as libpq's tools take it: the URL without its password, which goes
    in ``PGPASSWORD`` so it never shows in ``ps``."""

    url: str
    password: str | None

    @classmethod
    def at(cls, url: str) -> Database:
        """From a libpq or SQLAlchemy URL (``postgresql+psycopg://``)."""
        parsed = make_url(url)
        # URL.set() takes password=None to mean "unchanged", so the URL is made anew without it.
        bare = URL.create(
            "postgresql", parsed.username, None, parsed.host, parsed.port, parsed.database, parsed.query
        )
        return cls(bare.render_as_string(hide_password=False), parsed.password)

    @property
    def name(self) -> str:
        return make_url(self.url).database or ""

    def renamed(self, name: str) -> Database:
        """The database ``name`` on the same server, as the same user."""
        return Database(
            make_url(self.url).set(database=name).render_as_string(hide_password=False), self.password
        )

    def env(self) -> dict[str, str]:
        secret = {"PGPASSWORD": self.password} if self.password else {}
        return {**os.environ, **secret, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.url, password=self.password, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.OperationalError as exc:
            raise connection_failed(self.url, str(exc)) from None


IDENTITY = (
    "SELECT pg_postmaster_start_time(), oid, datname FROM pg_database WHERE datname = current_database()"
)


def identity(database: Database) -> tuple[Any, ...]:
    """Which database this is, however its URL is spelled (an alias, ``localhost`` for
    ``127.0.0.1``): its server's start time to the microsecond, and its oid and name."""
    with database.connect() as connection:
        row = connection.execute(IDENTITY).fetchone()
    return tuple(row or ())


def connection_failed(url: str, said: str) -> UpkeepError:
    """A refusal (bad credentials, no such database) is permanent; anything else (refused,
    timed out, the server starting) may pass."""
    reason = " ".join(said.split()) or "no reason given"
    refused = any(words in said.lower() for words in REFUSALS)
    return UpkeepError(f"Cannot connect to {url}: {reason}", retriable=not refused)


def server_version(connection: psycopg.Connection[Any]) -> tuple[int, str]:
    """The server's major version and its ``major.minor`` text, from ``server_version_num``."""
    row = connection.execute("SHOW server_version_num").fetchone()
    number = int(str(row[0])) if row else 0
    return number // 10000, f"{number // 10000}.{number % 10000}"


def find_tool(name: str, major: int, bin_dir: str, purpose: str) -> str:
    """The ``name`` binary of the server's ``major`` version: in CONVEYOR_PG_BIN_DIR, then where
    Debian's packages put each version, then on PATH. Another version is refused, naming both:
    pg_dump cannot dump a newer server, and an older pg_restore cannot read a newer dump."""
    found = []
    for path in _candidates(name, major, bin_dir):
        version = tool_version(path)
        if version and version[0] == major:
            return path
        found.append(f"{name} {version[1] if version else 'of unknown version'}")
    have = found[0] if found else f"no {name}"
    raise UpkeepError(
        f"{have} cannot {purpose}: install postgresql-client-{major} or set CONVEYOR_PG_BIN_DIR."
    )


def _candidates(name: str, major: int, bin_dir: str) -> list[str]:
    folders = [bin_dir] if bin_dir else []
    paths = [str(Path(folder) / name) for folder in (*folders, f"/usr/lib/postgresql/{major}/bin")]
    on_path = shutil.which(name)
    return [path for path in (*paths, on_path) if path and os.access(path, os.X_OK)]


def tool_version(path: str) -> tuple[int, str] | None:
    """``pg_dump --version`` says ``pg_dump (PostgreSQL) 15.20 (Debian ...)``."""
    try:
        said = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = VERSION.search(said)
    if not match:
        return None
    major, minor = match.group(1), match.group(2)
    return int(major), f"{major}.{minor}" if minor else major


def tool_failed(command: str, returncode: int, stderr: str, url: str) -> UpkeepError:
    """A tool's exit, classified: killed by a signal or unable to reach the server may pass;
    anything else (a refusal, a bad archive) will happen again."""
    said = " ".join(stderr.split())[-600:] or "no message"
    if returncode < 0:
        return UpkeepError(f"{command} was killed by signal {-returncode} ({url}).", retriable=True)
    passing = any(words in said.lower() for words in PASSING)
    if passing and not any(words in said.lower() for words in REFUSALS):
        return UpkeepError(f"{command} lost or could not reach {url}: {said}", retriable=True)
    return UpkeepError(f"{command} failed with exit code {returncode} ({url}): {said}")
