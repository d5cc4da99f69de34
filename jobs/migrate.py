"""Run Alembic from code, and tell whether a database is at head (for readiness)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from jobs.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Migrate the database named by ``settings`` (default: the environment's settings)."""
    command.upgrade(alembic_config(settings), revision)


def pending_migrations(engine: Engine) -> list[str]:
    """Revisions between the database's current one and head; empty when at head."""
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    head = script.get_current_head()
    if head is None or head in current:
        return []
    lower = current[0] if current else "base"
    return [rev.revision for rev in script.iterate_revisions(head, lower)]
