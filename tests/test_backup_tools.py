"""What the backups take from their surroundings: the client binaries of the server's major
version, libpq URLs with the password kept out, and the operator's own drill database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jobs.upkeep.postgres import Database, UpkeepError, find_tool, tool_version
from tasks.errors import PermanentError
from tests.backup_helpers import TABLES, count_rows, drop_database, make_target, platform
from tests.services import fresh_postgres_database


def fake_pg_dump(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pg_dump"
    path.write_text(f"#!/bin/sh\necho 'pg_dump (PostgreSQL) {version}'\n")
    path.chmod(0o755)
    return path


def test_the_binary_of_the_servers_major_version_is_chosen_before_the_folder_setting(tmp_path: Path) -> None:
    fake = fake_pg_dump(tmp_path / "bin", "16.2")

    chosen = find_tool("pg_dump", 15, str(tmp_path / "bin"), "back up server 15.20")

    version = tool_version(chosen)
    assert chosen != str(fake) and version is not None and version[0] == 15


def test_a_binary_of_another_major_version_is_refused_naming_both_versions(tmp_path: Path) -> None:
    fake_pg_dump(tmp_path / "bin", "16.2")

    with pytest.raises(UpkeepError) as caught:
        find_tool("pg_dump", 99, str(tmp_path / "bin"), "back up server 99.1 of target 'x'")

    assert str(caught.value) == (
        "pg_dump 16.2 cannot back up server 99.1 of target 'x': install postgresql-client-99 "
        "or set CONVEYOR_PG_BIN_DIR."
    )
    assert caught.value.retriable is False


def test_a_sqlalchemy_url_becomes_a_libpq_one_with_its_password_apart() -> None:
    database = Database.at("postgresql+psycopg://app:s3cret@db.example:6432/orders?sslmode=require")

    assert database.url == "postgresql://app@db.example:6432/orders?sslmode=require"
    assert database.password == "s3cret" and database.env()["PGPASSWORD"] == "s3cret"
    assert database.renamed("scratch").url == "postgresql://app@db.example:6432/scratch?sslmode=require"


def test_a_drill_into_the_operators_database_leaves_it_empty_and_refuses_one_that_is_not(
    tmp_path: Path,
) -> None:
    target = make_target("drillurl")
    scratch = fresh_postgres_database(f"conveyor_test_bk_scratch_{uuid.uuid4().hex[:8]}")
    try:
        made = platform(
            tmp_path / "data", CONVEYOR_BACKUP_TARGETS=f"app={target}", CONVEYOR_RESTORE_DRILL_URL=scratch
        )
        made.run("backup", target="app")

        assert made.run("restore-drill", target="app")["tables_checked"] == len(TABLES)
        with pytest.raises(Exception, match="customers"):
            count_rows(scratch, "customers")

        made.run("restore-backup", backup_id=str(made.backups()[0].id), into=scratch)
        with pytest.raises(PermanentError, match="is not empty: it holds"):
            made.run("restore-drill", target="app")
        assert count_rows(scratch, "customers") == TABLES["public.customers"]
    finally:
        drop_database(target)
        drop_database(scratch)
