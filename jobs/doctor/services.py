"""Checks of what the platform talks to: the database (and its migrations, and its connections
left), the broker, and a worker consuming every queue. The doctor's own connections give up in
seconds, where the platform's wait out a slow server."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from jobs.broker.queues import QUEUES
from jobs.db import Database, make_engine
from jobs.doctor.report import FAIL, OK, SKIP, WARN, Check
from jobs.models import utcnow
from jobs.settings import Settings

TIMEOUT_S = 3
TOO_MANY_CONNECTIONS = "53300"
CONNECTIONS_WARN, CONNECTIONS_FAIL = 0.75, 0.9
SERVICE_OF_QUEUE = {
    "default": "worker",
    "maintenance": "worker",
    "ocr": "ocr-worker",
    "imports": "imports-worker",
}
CONNECTIONS = text(
    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
    " current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
    " - coalesce(current_setting('reserved_connections', true), '0')::int"
)
WHO_HOLDS_THEM = (
    "psql as a superuser (their reserved connections): SELECT usename, application_name, state, count(*) "
    "FROM pg_stat_activity GROUP BY 1, 2, 3 ORDER BY 4 DESC; then lower CONVEYOR_WORKER_CONCURRENCY "
    "or raise max_connections"
)


class QuickDatabase(Database):
    @cached_property
    def engine(self) -> Engine:
        if not self.settings.has_postgresql:
            return make_engine(self.settings)
        limits = {"connect_timeout": TIMEOUT_S, "options": f"-c statement_timeout={TIMEOUT_S * 1000}"}
        return create_engine(self.settings.database_url, poolclass=NullPool, connect_args=limits)


def database(db: Database) -> list[Check]:
    from jobs.migrate import pending_migrations

    try:
        pending = pending_migrations(db.engine)
    except Exception as exc:
        return [_unusable(exc)]
    if pending:
        message = f"The database is {len(pending)} migrations behind head: the API and workers will fail."
        return [Check("database", FAIL, message, "conveyor migrate")]
    return [Check("database", OK, f"Reachable ({db.engine.dialect.name}), migrations at head.")]


def _unusable(exc: Exception) -> Check:
    from sqlalchemy.exc import DBAPIError

    said = f"{type(exc).__name__}: {exc}"
    if getattr(getattr(exc, "orig", None), "sqlstate", None) == TOO_MANY_CONNECTIONS:
        return Check("database", FAIL, f"PostgreSQL refuses new connections: {said}", WHO_HOLDS_THEM)
    if not isinstance(exc, DBAPIError):  # alembic: a revision this code does not know
        message = f"The database's schema is not one this code knows (a newer release's?): {said}"
        return Check("database", FAIL, message, "deploy the release that migrated it")
    return Check("database", FAIL, f"The database cannot be reached: {said}", "check CONVEYOR_DATABASE_URL")


def broker(settings: Settings) -> list[Check]:
    from jobs.broker.config import ping

    try:
        ping(settings)
    except Exception as exc:
        message = f"The broker cannot be reached: {type(exc).__name__}: {exc}"
        return [Check("broker", FAIL, message, "check CONVEYOR_BROKER_URL and that the broker runs")]
    return [Check("broker", OK, "Reachable.")]


def consumers(db: Database) -> list[Check]:
    """A queue nobody consumes fails once a job waits there (until then it only warns)."""
    if db.settings.is_embedded_broker:
        why = "The file-system broker cannot be asked who consumes it (`conveyor dev` serves every queue)."
        return [Check("consumers", SKIP, why)]
    served = _served_queues(db.settings)
    missing = [queue for queue in QUEUES if queue not in served]
    if not missing:
        return [Check("consumers", OK, f"Every queue has a consumer ({len(served)} queues served).")]
    stuck = [queue for queue in missing if queue in _queues_with_jobs(db, missing)]
    services = sorted({SERVICE_OF_QUEUE[queue] for queue in missing})
    start = f"docker compose up -d {' '.join(services)}, or `conveyor worker --queues {','.join(missing)}`"
    if stuck:
        message = f"No worker consumes {', '.join(missing)}: jobs wait in {', '.join(stuck)} until one does."
        return [Check("consumers", FAIL, message, start)]
    return [
        Check("consumers", WARN, f"No worker consumes {', '.join(missing)} (no job waits there yet).", start)
    ]


def _queues_with_jobs(db: Database, queues: list[str]) -> set[str]:
    """Every one of ``queues`` when the database cannot tell."""
    from jobs.observability.gauges import waiting_jobs

    try:
        with db.sessions() as session:
            return set(waiting_jobs(session, utcnow()))
    except Exception:
        return set(queues)


def _served_queues(settings: Settings) -> set[str]:
    from jobs.broker.config import control_app

    with control_app(settings) as app:
        replies = app.control.inspect(timeout=TIMEOUT_S - 1).active_queues() or {}
    return {queue["name"] for queues in replies.values() for queue in queues}


def connections(db: Database) -> list[Check]:
    """The runbook's "DB connections exhausted": warned of before new ones are refused."""
    if not db.settings.has_postgresql:
        return [Check("db-connections", SKIP, "Only PostgreSQL has a connection limit to watch.")]
    with db.engine.connect() as connection:
        used, limit = connection.execute(CONNECTIONS).one()
    message = f"{used} of {limit} connections in use."
    share = used / max(limit, 1)
    if share >= CONNECTIONS_FAIL:
        return [Check("db-connections", FAIL, message + " New ones are about to be refused.", WHO_HOLDS_THEM)]
    if share >= CONNECTIONS_WARN:
        return [Check("db-connections", WARN, message, WHO_HOLDS_THEM)]
    return [Check("db-connections", OK, message)]
