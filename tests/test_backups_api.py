"""``/v1/backups``, ``/v1/restore-drills`` and ``conveyor backups``: scopes, refusals, audit."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from jobs.models import AuditEntry, Backup, utcnow
from tests.api_helpers import assert_error
from tests.support import Backend, auth, conveyor

# Schedules and backups depend on the database (SQLite, PostgreSQL), not on the broker.
pytestmark = pytest.mark.parametrize("backend", ["embedded", "redis"], indirect=True)


def stored_backup(backend: Backend, *, verified: bool) -> Backup:
    now = utcnow()
    backup = Backup(
        id=uuid.uuid4(), target="listed-only", url="file:///nowhere/x.dump", size=10, sha256="0" * 64,
        started_at=now - timedelta(seconds=3), finished_at=now, duration_s=3.0, server_version="15.20",
        migration_head="0007", tables={"public.jobs": {"rows": 1, "estimate": 1.0}}, verified=verified,
        verify_error=None if verified else "sha256 differs", created_at=now,
    )  # fmt: skip
    with backend.sessions.begin() as session:
        session.add(backup)
    return backup


def test_operators_list_and_read_the_manifest(backend: Backend, client: FlaskClient, ops: str) -> None:
    backup = stored_backup(backend, verified=False)
    page = client.get("/v1/backups?limit=500", headers=auth(ops)).get_json()
    listed = next(item for item in page["items"] if item["id"] == str(backup.id))
    assert listed["counts"] is False and listed["verify_error"] == "sha256 differs"
    one = client.get(f"/v1/backups/{backup.id}", headers=auth(ops)).get_json()
    assert one["tables"] == {"public.jobs": {"rows": 1, "estimate": 1.0}}
    assert_error(client.get(f"/v1/backups/{uuid.uuid4()}", headers=auth(ops)), 404)
    assert client.get("/v1/restore-drills", headers=auth(ops)).status_code == 200


def test_a_restore_needs_admin_a_verified_backup_and_never_a_live_database(
    backend: Backend, client: FlaskClient, ops: str, admin: str
) -> None:
    verified, unverified = stored_backup(backend, verified=True), stored_backup(backend, verified=False)
    scratch = {"into": "postgresql://127.0.0.1:5432/conveyor_restore_here"}
    assert_error(client.post(f"/v1/backups/{verified.id}/restore", json=scratch, headers=auth(ops)), 403)
    refused = assert_error(
        client.post(f"/v1/backups/{unverified.id}/restore", json=scratch, headers=auth(admin)), 409
    )
    assert "is not verified (sha256 differs)" in refused["message"]
    secret = {"into": "postgresql://me:secret@127.0.0.1:5432/elsewhere"}
    assert_error(client.post(f"/v1/backups/{verified.id}/restore", json=secret, headers=auth(admin)), 422)
    if backend.settings.has_postgresql:
        live = {"into": backend.settings.database_url}
        body = assert_error(
            client.post(f"/v1/backups/{verified.id}/restore", json=live, headers=auth(admin)), 422
        )
        assert "live database of target 'platform'" in json.dumps(body)


def test_a_manual_backup_is_a_job_and_is_audited(backend: Backend, client: FlaskClient, ops: str) -> None:
    response = client.post("/v1/backups", json={"target": "platform"}, headers=auth(ops))
    if not backend.settings.has_postgresql:
        assert "the platform's database is SQLite" in json.dumps(assert_error(response, 422))
        return
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()
    assert job["type"] == "backup" and job["causation_id"].startswith("token:")
    with backend.sessions() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "backup")).all()
    assert any(entry.details and entry.details["job_id"] == job["id"] for entry in entries)


def test_the_cli_lists_backups_and_asks_before_a_restore(backend: Backend) -> None:
    backup = stored_backup(backend, verified=True)
    listed = conveyor(backend, "backups", "list")
    assert listed.returncode == 0 and str(backup.id) in listed.stdout, listed.stderr
    assert listed.stdout.split()[:3] == ["ID", "TARGET", "STARTED"]
    shown = json.loads(conveyor(backend, "backups", "list", "--json").stdout)
    assert any(item["id"] == str(backup.id) and item["counts"] for item in shown)
    asked = conveyor(
        backend, "backups", "restore", str(backup.id), "--into", "postgresql://127.0.0.1/scratch"
    )
    assert asked.returncode == 2 and "pass --yes" in asked.stderr
    bad = conveyor(backend, "backups", "verify", "not-an-id")
    assert bad.returncode == 2 and "backup ids are UUIDs" in bad.stderr and "Traceback" not in bad.stderr
    assert conveyor(backend, "backups", "drills").returncode == 0


def test_upkeep_job_types_need_their_scope_through_v1_jobs_too(client: FlaskClient, writer: str) -> None:
    restore = {
        "type": "restore-backup",
        "payload": {"backup_id": str(uuid.uuid4()), "into": "postgresql://h/db"},
    }
    assert (
        "lacks the 'admin' scope"
        in assert_error(client.post("/v1/jobs", json=restore, headers=auth(writer)), 403)["message"]
    )
    purge = {"type": "purge-dead-letters", "payload": {}}
    assert (
        "lacks the 'ops' scope"
        in assert_error(client.post("/v1/jobs", json=purge, headers=auth(writer)), 403)["message"]
    )


def test_no_sync_may_write_into_the_backups(backend: Backend, client: FlaskClient, writer: str) -> None:
    payload = {"source": f"file://{backend.files_root}", "destination": backend.settings.backup_url}
    body = assert_error(
        client.post("/v1/jobs", json={"type": "s3-sync", "payload": payload}, headers=auth(writer)), 422
    )
    assert "overlaps the platform's backups" in json.dumps(body)
