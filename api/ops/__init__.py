"""The ops console at `/ops`: server-rendered pages over the same service functions as the API
and the CLI, for what Flower cannot do (requeue, purge, schedules, backups)."""

from __future__ import annotations

from flask import Flask

from api.errors import ERROR_PAGE
from api.ops import dead_letters, jobs, login, upkeep
from api.ops.console import bp, error_page


def register(app: Flask) -> None:
    for pages in (dead_letters, jobs, login, upkeep):
        assert pages.bp is bp
    app.register_blueprint(bp)
    app.extensions[ERROR_PAGE] = error_page
