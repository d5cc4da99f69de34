"""Alembic environment: the URL comes from Conveyor's settings, never from alembic.ini."""

from alembic import context
from sqlalchemy import text

from jobs.db import make_engine
from jobs.models import Base
from jobs.settings import load_settings

ADVISORY_LOCK_ID = 7_240_311


def run_migrations_online() -> None:
    settings = context.config.attributes.get("settings") or load_settings()
    engine = make_engine(settings)
    with engine.connect() as connection:
        is_postgres = connection.dialect.name == "postgresql"
        if is_postgres:
            # Two processes migrating at once (API and worker starting together) must not race.
            connection.execute(text("SET lock_timeout = '30s'"))
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
            connection.commit()
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=not is_postgres
        )
        with context.begin_transaction():
            context.run_migrations()
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
            connection.commit()
    engine.dispose()


run_migrations_online()
