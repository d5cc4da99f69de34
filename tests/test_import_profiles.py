"""``/v1/import-profiles``: profiles are data, versioned, and checked against their table."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from flask.testing import FlaskClient

from api import create_app
from jobs.errors import ConflictError
from jobs.imports.targets import target_database
from tests.api_helpers import assert_error
from tests.support import Backend, auth, conveyor

TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id bigint PRIMARY KEY, name text NOT NULL, amount numeric, at timestamptz, active boolean,
    note varchar(20), created timestamptz NOT NULL DEFAULT now()
)"""


def profile(**changes: Any) -> dict[str, Any]:
    base = {
        "schema": "imports",
        "table": "people",
        "columns": [
            {"name": "id", "type": "bigint"},
            {"name": "name", "type": "text", "required": True, "max_length": 100},
            {"name": "amount", "type": "numeric"},
            {"name": "active", "type": "boolean"},
        ],
        "keys": ["id"],
        "mode": "upsert",
    }
    return {**base, **changes}


@pytest.fixture
def people(backend: Backend) -> str:
    with psycopg.connect(target_database(backend.settings, "platform").url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS imports")
        connection.execute(TABLE.format(name="imports.people"))
        connection.execute("CREATE TABLE IF NOT EXISTS imports.loose (id bigint, name text)")
        connection.execute("CREATE TABLE IF NOT EXISTS imports.partial (id bigint, name text)")
        connection.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS partial_id ON imports.partial (id) WHERE id > 0"
        )
    return "people"


pg = pytest.mark.parametrize("backend", ["redis"], indirect=True)


@pg
def test_a_profile_is_saved_read_and_versioned(client: FlaskClient, ops: str, people: str) -> None:
    created = client.post("/v1/import-profiles", json={"name": "people-a", **profile()}, headers=auth(ops))
    assert created.status_code == 201, created.get_json()
    first = created.get_json()
    assert (first["version"], first["mode"], first["schema"], first["target"]) == (
        1,
        "upsert",
        "imports",
        "platform",
    )
    assert first["columns"][0]["required"] is True  # a key column is required

    same = client.put("/v1/import-profiles/people-a", json=profile(), headers=auth(ops)).get_json()
    assert same["version"] == 1
    changed = client.put("/v1/import-profiles/people-a", json=profile(mode="insert"), headers=auth(ops))
    assert changed.status_code == 200 and changed.get_json()["version"] == 2
    assert (
        client.get("/v1/import-profiles/people-a?version=1", headers=auth(ops)).get_json()["mode"] == "upsert"
    )
    assert client.get("/v1/import-profiles/people-a", headers=auth(ops)).get_json()["version"] == 2
    listed = client.get("/v1/import-profiles", headers=auth(ops)).get_json()["items"]
    assert [(p["name"], p["version"]) for p in listed if p["name"] == "people-a"] == [("people-a", 2)]
    assert_error(
        client.post("/v1/import-profiles", json={"name": "people-a", **profile()}, headers=auth(ops)), 409
    )


@pg
@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"table": "nobody"}, "The table imports.nobody does not exist"),
        (
            {
                "columns": [
                    {"name": "id", "type": "bigint"},
                    {"name": "name", "type": "text"},
                    {"name": "age", "type": "integer"},
                ]
            },
            "Column 'age' is not in imports.people",
        ),
        (
            {"columns": [{"name": "id", "type": "integer"}, {"name": "name", "type": "text"}]},
            "Column 'id' of imports.people is bigint; the profile says integer",
        ),
        (
            {"columns": [{"name": "id", "type": "bigint"}]},
            "Column 'name' of imports.people is NOT NULL without a default",
        ),
        (
            {"table": "loose", "columns": [{"name": "id", "type": "bigint"}]},
            "by keys needs a unique index on them (id)",
        ),
        (
            {"table": "partial", "columns": [{"name": "id", "type": "bigint"}]},
            "by keys needs a unique index on them (id)",
        ),
        ({"target": "elsewhere"}, "No import target is named 'elsewhere'"),
    ],
    ids=[
        "no-table",
        "no-column",
        "wrong-type",
        "required-column-missing",
        "no-unique-index",
        "partial-unique-index",
        "unknown-target",
    ],
)
def test_a_profile_that_does_not_fit_its_table_is_a_422_naming_why(
    client: FlaskClient, ops: str, people: str, changes: dict[str, Any], said: str
) -> None:
    response = client.post(
        "/v1/import-profiles", json={"name": "misfit", **profile(**changes)}, headers=auth(ops)
    )
    assert said in assert_error(response, 422)["message"]


@pg
def test_the_platforms_own_schema_is_no_import_target(client: FlaskClient, ops: str, people: str) -> None:
    body = profile(
        schema="public", table="api_tokens", columns=[{"name": "id", "type": "uuid"}], keys=[], mode="insert"
    )
    response = client.post("/v1/import-profiles", json={"name": "tokens", **body}, headers=auth(ops))
    assert "holds the platform's own tables and is no import target" in assert_error(response, 422)["message"]


@pg
@pytest.mark.parametrize(
    "changes",
    [
        {"mode": "merge"},
        {"keys": []},
        {"keys": ["nope"]},
        {"columns": [{"name": "id", "type": "money"}]},
        {"table": "Bad Name"},
    ],
)
def test_a_profile_of_the_wrong_shape_is_a_422(
    client: FlaskClient, ops: str, changes: dict[str, Any]
) -> None:
    assert_error(
        client.post("/v1/import-profiles", json={"name": "shape", **profile(**changes)}, headers=auth(ops)),
        422,
    )


@pg
def test_an_unreachable_target_is_a_503(backend: Backend, ops: str) -> None:
    settings = dataclasses.replace(backend.settings, import_targets={"away": "postgresql://127.0.0.1:1/none"})
    client = create_app(settings).test_client()
    response = client.post(
        "/v1/import-profiles", json={"name": "away", **profile(target="away")}, headers=auth(ops)
    )
    assert "The import target away cannot be reached" in assert_error(response, 503)["message"]


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_the_embedded_platform_database_is_no_import_target(
    client: FlaskClient, ops: str, writer: str
) -> None:
    response = client.post("/v1/import-profiles", json={"name": "local", **profile()}, headers=auth(ops))
    assert "imports need a target in CONVEYOR_IMPORT_TARGETS" in assert_error(response, 422)["message"]
    assert_error(client.get("/v1/import-profiles", headers=auth(writer)), 403)
    assert_error(client.get("/v1/import-profiles/none", headers=auth(ops)), 404)


@pg
def test_profiles_kept_in_git_are_applied_in_one_command(
    backend: Backend, people: str, tmp_path: Path
) -> None:
    kept = tmp_path / "profiles.yaml"
    kept.write_text(yaml.safe_dump([{"name": "people-git", **profile()}]))

    first = conveyor(backend, "import-profiles", "apply", str(kept))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "people-git: saved as version 1"
    again = conveyor(backend, "import-profiles", "apply", str(kept))
    assert again.stdout.strip() == "people-git: unchanged at version 1"
    listed = json.loads(conveyor(backend, "import-profiles", "list", "--json").stdout)
    assert [p["version"] for p in listed if p["name"] == "people-git"] == [1]

    kept.write_text(yaml.safe_dump({"people-git": profile(mode="insert"), "misfit": profile(table="nobody")}))
    refused = conveyor(backend, "import-profiles", "apply", str(kept))
    assert refused.returncode != 0 and "The table imports.nobody does not exist" in refused.stderr
    listed = json.loads(conveyor(backend, "import-profiles", "list", "--json").stdout)
    assert [p["version"] for p in listed if p["name"] == "people-git"] == [1]  # all or none

    kept.write_text("people: [unclosed")
    assert "is not YAML" in conveyor(backend, "import-profiles", "apply", str(kept)).stderr


@pg
def test_two_saves_of_one_profile_at_once_are_one_version_and_a_conflict(
    backend: Backend, people: str
) -> None:
    from jobs.imports import profiles

    definition = profiles.load_definition(profile())
    with backend.sessions.begin() as session:
        profiles.save(session, backend.settings, "people-race", definition, "test")
    changed = profiles.load_definition(profile(mode="insert"))
    first, second = backend.sessions(), backend.sessions()
    profiles.save(first, backend.settings, "people-race", changed, "a")  # version 2, not committed
    outcome: list[BaseException | None] = []

    def rival() -> None:
        try:
            profiles.save(second, backend.settings, "people-race", changed, "b")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=rival)
    thread.start()
    thread.join(2)  # the rival waits on version 2's row
    first.commit()
    thread.join(30)
    second.rollback()
    first.close()
    second.close()
    assert len(outcome) == 1 and isinstance(outcome[0], ConflictError), outcome
    assert "at the same time" in str(outcome[0])
