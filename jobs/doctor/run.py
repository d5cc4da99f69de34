"""Every check, in the order an operator reads them: settings, services, then the work."""

from __future__ import annotations

from jobs.db import Database
from jobs.doctor import backlog, security, services
from jobs.doctor.report import FAIL, SKIP, Check, guarded
from jobs.models import utcnow

READ_FROM_DATABASE = {
    "queues": backlog.queues,
    "outbox": backlog.outbox,
    "dead-letters": backlog.dead_letters,
    "heartbeats": backlog.heartbeats,
    "schedules": backlog.schedules,
    "backups": backlog.backups,
}


def run_checks(db: Database) -> list[Check]:
    settings = db.settings
    found = [
        *security.settings_checks(settings),
        *guarded("credentials", security.default_credentials, settings),
    ]
    found += security.flower_auth(settings)
    found += guarded("database", services.database, db.engine)
    database_up = found[-1].status != FAIL
    found += guarded("broker", services.broker, settings)
    if found[-1].status == FAIL:
        found.append(Check("consumers", SKIP, "Needs the broker."))
    else:
        found += guarded("consumers", services.consumers, settings)
    if not database_up:
        return found + [Check(name, SKIP, "Needs the database.") for name in READ_FROM_DATABASE]
    found += guarded("db-connections", services.connections, db.engine)
    now = utcnow()
    with db.sessions() as session:
        for name, check in READ_FROM_DATABASE.items():
            found += guarded(name, check, session, settings, now)
    return found
