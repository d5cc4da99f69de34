"""Logging and error reporting, set up once per process at its entry point."""

from __future__ import annotations

import logging

from jobs.settings import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
    )


def init_sentry(settings: Settings, component: str) -> None:
    if not settings.sentry_dsn:
        return
    import sentry_sdk

    sentry_sdk.init(dsn=settings.sentry_dsn, server_name=component, send_default_pii=False)
