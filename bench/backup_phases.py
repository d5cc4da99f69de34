"""What bench/backup.py stands on: its own databases, the pgbench data, and the anchor tools
(``pg_dump``, ``pg_restore``) timed from fork to exit, each bounded and killed on the way out."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from bench.harness import BenchError
from tests.services import PG_ADMIN_URL

MB = 1_000_000
PREFIX = "conveyor_bench_backup"
USER_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%%'
"""


@dataclass
class Databases:
    """Every database the run creates, each with a unique name, all dropped by ``drop_all``."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    names: list[str] = field(default_factory=list)

    def create(self, role: str) -> str:
        name = f"{PREFIX}_{role}_{self.run}"
        self.names.append(name)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return url_of(name)

    def drop_all(self) -> None:
        for name in reversed(self.names):
            try:
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                    conn.execute(drop.format(sql.Identifier(name)))
            except psycopg.Error as exc:
                print(f"Could not drop database {name}: {exc}", flush=True)
        self.names.clear()


def url_of(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def scalar(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def server_major() -> int:
    return scalar(PG_ADMIN_URL, "SHOW server_version_num") // 10000


def pg_tool(name: str, major: int) -> str:
    """The binary the job would pick: Debian's folder for the server's major, else PATH."""
    debian = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    found = str(debian) if debian.exists() else shutil.which(name)
    if not found:
        raise BenchError(f"no {name} for PostgreSQL {major}")
    return found


def run_timed(argv: list[str], log: Path, timeout: float, what: str) -> float:
    """Seconds from fork to exit of ``argv`` in a process group of its own; a timeout, a
    failure or an interrupt kills the whole group (a shell pipeline too)."""
    with log.open("ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{what} timed out after {timeout:.0f} s") from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        tail = log.read_text(errors="replace")[-1200:]
        raise BenchError(f"{what} exited {process.returncode}:\n{tail}")
    return seconds


def generate(db_url: str, scale: int, log: Path, timeout: float) -> float:
    """``pgbench -i -s scale`` into the database, then a checkpoint, so the dumps that follow do
    not share the machine with the writes pgbench left for the checkpointer."""
    host, user = "127.0.0.1", "postgres"
    argv = [shutil.which("pgbench") or "/usr/bin/pgbench", "-i", "-s", str(scale), "-q"]
    seconds = run_timed([*argv, "-h", host, "-U", user, name_of(db_url)], log, timeout, "pgbench -i")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return seconds


def database_size(db_url: str) -> int:
    return scalar(db_url, "SELECT pg_database_size(current_database())")


@dataclass
class Anchors:
    """The client tools of the server's major, run as an operator would."""

    major: int
    folder: Path
    timeout: float

    @property
    def pg_dump(self) -> str:
        return pg_tool("pg_dump", self.major)

    def dump_custom(self, db_url: str, name: str) -> tuple[float, Path]:
        path = self.folder / f"{name}.dump"
        path.unlink(missing_ok=True)
        argv = [self.pg_dump, "-Fc", "-f", str(path), f"--dbname={db_url}"]
        seconds = run_timed(argv, self.folder / f"{name}.log", self.timeout, "pg_dump -Fc")
        return seconds, path

    def dump_gzip(self, db_url: str) -> tuple[float, Path]:
        path = self.folder / "plain.sql.gz"
        line = f"{shlex.quote(self.pg_dump)} --dbname={shlex.quote(db_url)} | gzip > {shlex.quote(str(path))}"
        argv = ["bash", "-o", "pipefail", "-c", line]
        return run_timed(argv, self.folder / "gzip.log", self.timeout, "pg_dump | gzip"), path

    def restore(self, archive: Path, into_url: str) -> float:
        """``pg_restore --jobs 2`` with the drill's other flags, so the two restore alike."""
        tool = pg_tool("pg_restore", self.major)
        argv = [tool, "--jobs=2", "--no-owner", "--exit-on-error", f"--dbname={into_url}", str(archive)]
        return run_timed(argv, self.folder / "restore.log", self.timeout, "pg_restore --jobs 2")


def count_rows(db_url: str) -> float:
    """Seconds to count every user table's rows exactly, as the backup job does in the dump's
    snapshot for its manifest (the anchors do not count): the work the job adds to pg_dump's."""
    started = time.monotonic()
    with psycopg.connect(db_url, autocommit=True) as conn:
        tables = conn.execute(USER_TABLES).fetchall()
        for schema, name in tables:
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name)))
    return time.monotonic() - started
