"""What request handlers share: settings, the session factory and the publisher."""

from __future__ import annotations

from functools import cached_property

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from jobs.db import make_engine, make_sessionmaker
from jobs.outbox import Publisher
from jobs.settings import Settings


class ApiRuntime:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_sessionmaker(make_engine(self.settings))

    @cached_property
    def publisher(self) -> Publisher:
        return Publisher(self.settings)


def runtime() -> ApiRuntime:
    found: ApiRuntime = current_app.extensions["conveyor"]
    return found
