"""Every check, in the order an operator reads them: settings, services, then the work."""

from __future__ import annotations

from jobs.doctor import backlog, security, services
from jobs.doctor.report import FAIL, OK, SKIP, Check, guarded
from jobs.models import utcnow
from jobs.settings import Settings

READ_FROM_DATABASE = {
    "queues": backlog.queues,
    "outbox": backlog.outbox,
    "dead-letters": backlog.dead_letters,
    "heartbeats": backlog.heartbeats,
    "schedules": backlog.schedules,
    "backups": backlog.backups,
}


def run_checks(settings: Settings) -> list[Check]:
    db = services.QuickDatabase(settings)
    try:
        database = guarded("database", services.database, db)
        return [*_of_settings(settings), *database, *_of_broker(db), *_of_work(db, database[-1].status == OK)]
    finally:
        db.dispose()


def _of_settings(settings: Settings) -> list[Check]:
    found = guarded("settings", security.settings_checks, settings)
    found += guarded("credentials", security.default_credentials, settings)
    return found + guarded("flower-auth", security.flower_auth, settings)


def _of_broker(db: services.QuickDatabase) -> list[Check]:
    found = guarded("broker", services.broker, db.settings)
    if found[-1].status == FAIL:
        return [*found, Check("consumers", SKIP, "Needs the broker.")]
    return found + guarded("consumers", services.consumers, db)


def _of_work(db: services.QuickDatabase, database_ok: bool) -> list[Check]:
    """Each check in a session of its own: one failed statement must not fail the next."""
    if not database_ok:
        names = ["db-connections", *READ_FROM_DATABASE]
        return [Check(name, SKIP, "Needs the database reachable and at head.") for name in names]
    found = guarded("db-connections", services.connections, db)
    now = utcnow()
    for name, check in READ_FROM_DATABASE.items():
        with db.sessions() as session:
            found += guarded(name, check, session, db.settings, now)
    return found
