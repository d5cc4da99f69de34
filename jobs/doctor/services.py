"""Checks of what the platform talks to: the database (and its migrations, and its connections
left), the broker, and a worker consuming every queue."""

from __future__ import annotations

from sqlalchemy import Engine, text

from jobs.broker.queues import QUEUES
from jobs.doctor.report import FAIL, OK, SKIP, WARN, Check
from jobs.settings import Settings

PING_TIMEOUT_S = 2.0
CONNECTIONS_WARN, CONNECTIONS_FAIL = 0.75, 0.9
SERVICE_OF_QUEUE = {
    "default": "worker",
    "maintenance": "worker",
    "ocr": "ocr-worker",
    "imports": "imports-worker",
}
CONNECTIONS = text(
    "SELECT (SELECT count(*) FROM pg_stat_activity),"
    " current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
)
WHO_HOLDS_THEM = (
    "psql -c 'SELECT usename, application_name, state, count(*) FROM pg_stat_activity GROUP BY 1, 2, 3 "
    "ORDER BY 4 DESC', then lower CONVEYOR_WORKER_CONCURRENCY or raise max_connections"
)


def database(engine: Engine) -> list[Check]:
    from jobs.migrate import pending_migrations

    try:
        pending = pending_migrations(engine)
    except Exception as exc:
        message = f"The database cannot be reached: {type(exc).__name__}: {exc}"
        return [Check("database", FAIL, message, "check CONVEYOR_DATABASE_URL and that the server runs")]
    if pending:
        message = f"The database is {len(pending)} migrations behind head: the API and workers will fail."
        return [Check("database", FAIL, message, "conveyor migrate")]
    return [Check("database", OK, f"Reachable ({engine.dialect.name}), migrations at head.")]


def broker(settings: Settings) -> list[Check]:
    from jobs.broker.config import ping

    try:
        ping(settings)
    except Exception as exc:
        message = f"The broker cannot be reached: {type(exc).__name__}: {exc}"
        return [Check("broker", FAIL, message, "check CONVEYOR_BROKER_URL and that the broker runs")]
    return [Check("broker", OK, "Reachable.")]


def consumers(settings: Settings) -> list[Check]:
    if settings.is_embedded_broker:
        why = "The file-system broker cannot be asked who consumes it (`conveyor dev` serves every queue)."
        return [Check("consumers", SKIP, why)]
    served = _served_queues(settings)
    missing = [queue for queue in QUEUES if queue not in served]
    if missing:
        services = sorted({SERVICE_OF_QUEUE[queue] for queue in missing})
        start = (
            f"docker compose up -d {' '.join(services)}, or `conveyor worker --queues {','.join(missing)}`"
        )
        message = f"No worker consumes {', '.join(missing)}: jobs there wait until one does."
        return [Check("consumers", FAIL, message, start)]
    return [Check("consumers", OK, f"Every queue has a consumer ({len(served)} queues served).")]


def _served_queues(settings: Settings) -> set[str]:
    from celery import Celery

    from jobs.broker.config import celery_config

    app = Celery(set_as_current=False)
    app.config_from_object(celery_config(settings))
    try:
        replies = app.control.inspect(timeout=PING_TIMEOUT_S).active_queues() or {}
    finally:
        app.close()
    return {queue["name"] for queues in replies.values() for queue in queues}


def connections(engine: Engine) -> list[Check]:
    """The seeds' runbook "DB connections exhausted": new ones are refused before it shows."""
    if engine.dialect.name != "postgresql":
        return [Check("db-connections", SKIP, "Only PostgreSQL has a connection limit to watch.")]
    with engine.connect() as connection:
        used, limit = connection.execute(CONNECTIONS).one()
    message = f"{used} of {limit} connections in use."
    share = used / max(limit, 1)
    if share >= CONNECTIONS_FAIL:
        return [Check("db-connections", FAIL, message + " New ones are about to be refused.", WHO_HOLDS_THEM)]
    if share >= CONNECTIONS_WARN:
        return [Check("db-connections", WARN, message, WHO_HOLDS_THEM)]
    return [Check("db-connections", OK, message)]
