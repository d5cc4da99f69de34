"""Backups run in this process, against real PostgreSQL and real storage: a generated target
database, a migrated platform database, and a context that records what the handler reported."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from jobs.catalogue import validate_payload
from jobs.db import Database
from jobs.migrate import upgrade
from jobs.models import Backup, RestoreDrill
from jobs.settings import load_settings
from jobs.storage import Storage, open_object
from jobs.upkeep import manifest
from tasks import HANDLERS
from tasks.context import JobContext
from tests.services import PG_ADMIN_URL, fresh_postgres_database

# The generated target: every kind of name pg_dump must quote, and a migration head.
TABLES = {
    "public.customers": 2000,
    "public.orders": 5000,
    "Sales.Line Items": 3000,
    "public.alembic_version": 1,
}
HEAD = "0007_maintenance"


def make_target(kind: str = "app") -> str:
    """A fresh database holding ``TABLES``; its URL."""
    url = fresh_postgres_database(f"conveyor_test_bk_{kind}_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url) as connection:
        connection.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text);"
            "CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, total numeric);"
            'CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Line Items" ("Order" int, "Qty" int);'
            "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        )
        connection.execute("INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 2000) g")
        connection.execute(
            "INSERT INTO orders SELECT g, 1 + g % 2000, g * 1.5 FROM generate_series(1, 5000) g"
        )
        connection.execute(
            'INSERT INTO "Sales"."Line Items" SELECT g % 5000, g FROM generate_series(1, 3000) g'
        )
        connection.execute("INSERT INTO alembic_version VALUES (%s)", (HEAD,))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ANALYZE")
    return url


def add_blobs(url: str, megabytes: int) -> None:
    """Random bytes pg_dump cannot compress, so its output takes a while to stream."""
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE blobs (id int PRIMARY KEY, data bytea)")
        with connection.cursor().copy("COPY blobs (id, data) FROM STDIN") as copy:
            for number in range(megabytes):
                copy.write_row((number, os.urandom(1024 * 1024)))


def drop_database(url_or_name: str) -> None:
    name = url_or_name.rsplit("/", 1)[-1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def databases(prefix: str) -> set[str]:
    with psycopg.connect(PG_ADMIN_URL) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        return {str(row[0]) for row in rows}


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else -1


@dataclass
class Reports:
    """What the handler reported; ``hook`` sees each report as it comes."""

    seen: list[tuple[int, str | None]] = field(default_factory=list)
    hook: Callable[[int, str], None] | None = None
    cancel_at: str | None = None
    """Answer that the job was cancelled at the first report starting with this."""

    def __call__(self, percent: int, message: str | None) -> bool:
        self.seen.append((percent, message))
        if self.hook is not None:
            self.hook(percent, message or "")
        return self.cancel_at is not None and (message or "").startswith(self.cancel_at)


@dataclass
class Platform:
    """A migrated SQLite platform database, whose backup folder and targets the test chose."""

    db: Database
    reports: Reports = field(default_factory=Reports)

    @property
    def settings(self) -> Any:
        return self.db.settings

    def run(self, job_type: str, **payload: Any) -> Any:
        loaded = validate_payload(job_type, payload, self.settings)
        ctx = JobContext(uuid.uuid4(), 1, 1, self.reports, self.settings, self.resolve, self.db.sessions)
        return HANDLERS[job_type](loaded, ctx)

    def resolve(self, ref: Mapping[str, Any]) -> tuple[Storage, str]:
        return open_object(ref["url"], self.settings)

    def backups(self, target: str | None = None) -> list[Backup]:
        with self.db.sessions() as session:
            return manifest.list_backups(session, 100, target=target)

    def drills(self) -> list[RestoreDrill]:
        with self.db.sessions() as session:
            return manifest.list_drills(session, 100)

    def newest_verified(self, target: str = "app") -> Backup | None:
        with self.db.sessions() as session:
            return manifest.newest_verified(session, target)

    def object_path(self, backup: Backup) -> Path:
        storage, key = open_object(backup.url, self.settings, trusted=True)
        return Path(storage.location.root) / key


def platform(data_dir: Path, **env: str) -> Platform:
    settings = load_settings({"CONVEYOR_DATA_DIR": str(data_dir), **env})
    upgrade(settings)
    return Platform(Database(settings))


def pg_dump_children() -> list[int]:
    """The pg_dump processes this test process started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        if fields[0].endswith("(pg_dump") and int(fields[1].split()[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def kill_pg_dump_after(size: int) -> Callable[[int, str], None]:
    """A report hook that SIGKILLs pg_dump once it has streamed ``size`` bytes. Until then each
    report waits a second, so every read of the stream reports (and the hook sees it)."""

    def hook(percent: int, message: str) -> None:
        if not message.startswith("Dumped "):
            return
        if int(message.split()[1]) < size:
            time.sleep(1.05)  # slows the stream down; nothing waits for an outcome here
            return
        for pid in pg_dump_children():
            os.kill(pid, signal.SIGKILL)

    return hook
