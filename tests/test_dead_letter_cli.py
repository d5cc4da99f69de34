"""``conveyor dead-letters``: the same operations as the API, for operators at a shell."""

from __future__ import annotations

import json
import os
import pwd
import subprocess

from flask.testing import FlaskClient

from tests.dead_letter_helpers import LETTER_FIELDS, dead_letter_of, exhaust, ids_listed, kill, letter, marker
from tests.support import Backend, conveyor

# The CLI


# The OS account, whatever $USER claims: the CLI is run with USER=someone-else.
CLI_ACTOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def dead_letters_cli(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return conveyor(backend, "dead-letters", *args, USER="someone-else", LOGNAME="someone-else")


def succeeds(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails_clearly(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0, done.stdout
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_cli_lists_dead_letters_as_a_table_and_as_json(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    text = marker()
    job_id, letter_id = kill(backend, client, writer, text)

    table = succeeds(dead_letters_cli(backend, "list", "--error", text))
    as_json = json.loads(succeeds(dead_letters_cli(backend, "list", "--error", text, "--json")))

    header, *rows = table.splitlines()
    assert header.split()[:3] == ["ID", "QUEUE", "TYPE"]
    assert len(rows) == 1 and rows[0].startswith(letter_id)
    assert [item["id"] for item in as_json] == [letter_id]
    assert as_json[0].keys() >= LETTER_FIELDS and as_json[0]["job_id"] == job_id


def test_cli_shows_one_dead_letter_and_the_stats_as_json(
    backend: Backend, client: FlaskClient, writer: str
) -> None:
    text = marker()
    _, letter_id = kill(backend, client, writer, text)

    shown = json.loads(succeeds(dead_letters_cli(backend, "show", letter_id)))
    stats = json.loads(succeeds(dead_letters_cli(backend, "stats", "--json")))

    assert shown["id"] == letter_id and shown["error"] == text
    assert shown["message"]["headers"]["id"] == f"{shown['job_id']}.1"
    assert stats["queue"]["default"] >= 1 and stats["type"]["fail"] >= 1
    assert stats["error"]["PermanentError"] >= 1


def test_cli_requeues_one_dead_letter_with_a_corrected_payload_as_the_cli_user(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    job_id, letter_id = exhaust(backend, client, writer, marker(), times=5)

    done = dead_letters_cli(backend, "requeue", letter_id, "--payload", '{"times": 0}', "--reason", "x")

    assert "Requeued 1" in succeeds(done) + done.stderr
    assert backend.wait_for_job(job_id, "succeeded", "dead").state == "succeeded"
    entry = letter(client, ops, letter_id)["requeues"][0]
    assert (entry["actor"], entry["reason"]) == (CLI_ACTOR, "x")


def test_cli_bulk_requeue_dry_run_prints_the_count_and_changes_nothing(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = {exhaust(backend, client, writer, text)[1] for _ in range(2)}

    done = dead_letters_cli(backend, "requeue", "--error", text, "--dry-run")

    succeeds(done)
    assert "2 dead letters match" in done.stderr
    assert ids_listed(client, ops, error=text) == made


def test_cli_bulk_requeue_without_yes_and_no_terminal_refuses(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    _, letter_id = exhaust(backend, client, writer, text)

    fails_clearly(dead_letters_cli(backend, "requeue", "--error", text), "--yes")

    assert letter(client, ops, letter_id)["state"] == "dead"


def test_cli_bulk_requeue_with_yes_requeues_every_match(
    backend: Backend, client: FlaskClient, writer: str, ops: str
) -> None:
    text = marker()
    made = dict(exhaust(backend, client, writer, text) for _ in range(2))

    done = dead_letters_cli(backend, "requeue", "--error", text, "--yes", "--reason", "bulk")

    assert "Requeued 2" in succeeds(done) + done.stderr
    for job_id, letter_id in made.items():
        entry = letter(client, ops, letter_id)["requeues"][0]
        assert (entry["actor"], entry["reason"]) == (CLI_ACTOR, "bulk")
        # The run fails again (attempts restart); wait, so no later test sees it die.
        dead_letter_of(backend, job_id, besides=letter_id)


def test_cli_purges_a_dead_letter_by_id(backend: Backend, client: FlaskClient, writer: str, ops: str) -> None:
    _, letter_id = kill(backend, client, writer, marker())

    done = dead_letters_cli(backend, "purge", letter_id, "--yes", "--reason", "r")

    assert "Purged 1" in succeeds(done) + done.stderr
    purged = letter(client, ops, letter_id)
    assert purged["state"] == "purged" and purged["message"] == {}
    assert [(e["action"], e["actor"], e["reason"]) for e in purged["audit"]] == [("purge", CLI_ACTOR, "r")]


def test_cli_purge_without_ids_or_expired_fails_clearly(backend: Backend) -> None:
    fails_clearly(dead_letters_cli(backend, "purge", "--yes"), "--expired")


def test_cli_show_of_a_non_uuid_fails_clearly(backend: Backend) -> None:
    fails_clearly(dead_letters_cli(backend, "show", "not-a-uuid"), "not-a-uuid")
