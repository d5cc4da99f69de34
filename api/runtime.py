"""What request handlers share: settings, the session factory and the token cache."""

from __future__ import annotations

import threading
import time

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from jobs import tokens
from jobs.db import Database
from jobs.models import ApiToken
from jobs.settings import Settings


class ApiRuntime(Database):
    """Built in each API process (gunicorn does not preload), shared by its request threads."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.tokens = TokenCache(self.sessions)


class TokenCache:
    """Token lookups kept for a few seconds: a revoked token works until its entry expires."""

    TTL_S = 10.0

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions
        self.entries: dict[str, tuple[float, ApiToken | None]] = {}
        self.lock = threading.Lock()

    def authenticate(self, token: str) -> ApiToken | None:
        now = time.monotonic()
        with self.lock:
            cached = self.entries.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.sessions() as session:
            found = tokens.authenticate(session, token)
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[token] = (now + self.TTL_S, found)
        return found


def runtime() -> ApiRuntime:
    found: ApiRuntime = current_app.extensions["conveyor"]
    return found
