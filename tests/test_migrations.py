"""Alembic is the only way the schema is made: it must match the models, up and down, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from jobs.db import make_engine
from jobs.migrate import alembic_config, pending_migrations, upgrade
from jobs.models import Base
from jobs.settings import Settings, load_settings
from tests.services import fresh_postgres_database, require_services


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "postgresql":
        require_services("rabbitmq")
        url = fresh_postgres_database(f"conveyor_test_migrations_{tmp_path.name[-8:].lower()}")
    else:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    yield load_settings({"CONVEYOR_DATABASE_URL": url, "CONVEYOR_DATA_DIR": str(tmp_path)})


def test_migrations_at_head_match_the_models(empty_database: Settings) -> None:
    upgrade(empty_database)
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_migrations_go_down_to_base_and_up_again(empty_database: Settings) -> None:
    engine = make_engine(empty_database)
    assert pending_migrations(engine)
    upgrade(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    assert pending_migrations(engine)
    upgrade(empty_database)
    assert pending_migrations(engine) == []
    engine.dispose()
