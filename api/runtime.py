"""What request handlers share: settings, the session factory and the publisher."""

from __future__ import annotations

import logging
import uuid
from functools import cached_property

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from jobs.db import make_engine, make_sessionmaker
from jobs.outbox import Publisher, publish_due
from jobs.settings import Settings

log = logging.getLogger(__name__)


class ApiRuntime:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(make_engine(self.settings))

    @cached_property
    def publisher(self) -> Publisher:
        return Publisher(self.settings)

    def publish_now(self, job_id: uuid.UUID) -> None:
        """The fast path after commit; if the broker is down the relay publishes the job later."""
        try:
            publish_due(self.sessions, self.publisher, job_ids=[job_id])
        except Exception as exc:
            log.warning("Job %s is saved but not published yet (%s); the relay will.", job_id, exc)


def runtime() -> ApiRuntime:
    found: ApiRuntime = current_app.extensions["conveyor"]
    return found
